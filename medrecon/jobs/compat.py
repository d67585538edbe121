"""Whether a prior can serve a job's data, decided from the prior's sidecar before any sampling.

The sidecar's ``serves`` field (``medrecon.priors.meta``: grids, pixel spacing, intensity range; without it exactly
``image_size``) is checked against the sampler's image grid, the data's pixel spacing where the file states one
(fastMRI ``reconSpace/fieldOfView_mm``, a NIfTI affine) and, for priors with a fixed intensity scale (CT), the
image's intensities. Each failure is one ``InputError`` line naming the data file, the field and the sidecar field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..priors.meta import ServedShapes, normalisation, served_shapes
from .problem import Volume

__all__ = ["check_prior_serves", "data_pixel_spacing"]

_DATA_FIELD = {"mri": "kspace", "ct": "image"}
INTENSITY_PERCENTILES = (1.0, 99.0)


def data_pixel_spacing(volume: Volume) -> tuple[tuple[float, float], str] | None:
    """The image's ``(row, column)`` pixel spacing in mm and the field it was read from, or ``None`` when the data
    does not state one (simulated volumes, files without a field of view)."""
    spacing = volume.attrs.get("pixel_spacing_mm")
    if spacing is not None:
        return (float(spacing[0]), float(spacing[1])), "ismrmrd_header"
    if volume.modality == "ct" and volume.path is not None and volume.affine is not None:
        affine = np.asarray(volume.affine, dtype=np.float64)
        return (float(np.linalg.norm(affine[:3, 0])), float(np.linalg.norm(affine[:3, 1]))), "affine"
    return None


def _name(meta: dict[str, Any]) -> str:
    return str(meta.get("weights", "the prior"))


def _check_spacing(meta: dict[str, Any], served: ServedShapes, volume: Volume, source: str) -> None:
    found = data_pixel_spacing(volume)
    if served.pixel_spacing_mm is None or found is None:
        return
    (dy, dx), field = found
    lo, hi = served.pixel_spacing_mm
    if lo <= dy <= hi and lo <= dx <= hi:
        return
    raise InputError(
        source,
        f"the data's pixels are {dy:.3g}x{dx:.3g} mm but the prior {_name(meta)} serves {lo:g}-{hi:g} mm pixels "
        "(its sidecar's serves.pixel_spacing_mm); use a prior trained at this resolution or resample the data",
        field=field,
    )


def _check_intensity(meta: dict[str, Any], served: ServedShapes, volume: Volume, source: str) -> None:
    """Fixed-scale priors only (the percentile rule maps any data into range): the image's 1st and 99th
    percentiles in prior units must lie within ``intensity_range`` widened by its span on each side (a check of
    units and window, which keeps e.g. skull above the training window)."""
    rule = normalisation(meta)
    if served.intensity_range is None or rule.rule != "fixed" or volume.image is None:
        return
    lo, hi = served.intensity_range
    span = hi - lo
    values = volume.image.detach().to("cpu").float().numpy() / rule.scale
    low, high = (float(v) for v in np.percentile(values, INTENSITY_PERCENTILES))
    if lo - span <= low and high <= hi + span:
        return
    raise InputError(
        source,
        f"the image's 1st-99th percentiles are {low:.4g} to {high:.4g} prior units but the prior {_name(meta)} "
        f"serves [{lo:g}, {hi:g}] (its sidecar's serves.intensity_range, at {rule.scale:g} data units per prior "
        "unit); check the data's units",
        field=_DATA_FIELD[volume.modality],
    )


def check_prior_serves(
    prior_meta: dict, image_shape: tuple[int, int], source: str, volume: Volume | None = None
) -> None:
    """Raise ``InputError`` (one line naming ``source``, the data's field and the sidecar's) when a prior cannot
    serve images ``image_shape`` ``(H, W)`` or, given ``volume``, its pixel spacing or intensities.

    The grid is the one the sampler works on: for MRI the k-space grid, its readout cropped to the recon rows with
    ``operator.readout_crop`` (fastMRI knee: 320x368, of which 320x320 is written), the image grid for CT.
    """
    meta = prior_meta or {}
    served = served_shapes(meta)
    if served is None:
        return
    shape = (int(image_shape[0]), int(image_shape[1]))
    if shape not in served:
        field = "serves" if "serves" in meta else "image_size"
        modality = volume.modality if volume is not None else meta.get("modality", "")
        raise InputError(
            source,
            f"the data's image grid is {shape[0]}x{shape[1]} but the prior {_name(meta)} serves {served} (its "
            f"sidecar's {field}); use a prior trained for {shape[0]}x{shape[1]} images or resample the data",
            field=_DATA_FIELD.get(modality),
        )
    if volume is not None:
        _check_spacing(meta, served, volume, source)
        _check_intensity(meta, served, volume, source)
