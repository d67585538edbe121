"""The constructors behind the registry's names. Keyword-only parameters are the job-file options.

Data constructors return a ``Volume``; operator constructors take ``(volume, generator)`` and return a
``VolumeProblem``; prior constructors take ``(volume)`` and return a denoiser; sampler constructors return a
``SamplerComponent``; baselines are ``recon(y, op) -> x``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import defaults as D
from ..errors import ConfigError, InputError
from ..files import verify_sha256
from .problem import Volume, VolumeProblem
from .registry import Range, value_ranges

_ONE = Range(1)
_POSITIVE = Range(0, lo_open=True)
_NON_NEGATIVE = Range(0)

__all__ = [
    "baseline_entries",
    "checkpoint_prior",
    "ct_phantom_data",
    "default_prior",
    "dicom_data",
    "fan_beam_operator",
    "fastmri_data",
    "heldout_phantom_volume",
    "hu_to_mu",
    "measured_ct_operator",
    "multicoil_mri_operator",
    "nifti_affine_of_dicom",
    "nifti_data",
    "parallel_beam_operator",
    "sampler_entries",
    "shipped_for_spacing",
    "shepp_logan_volume",
    "sinogram_data",
]


def _select_slices(n: int, slices: list[int] | None, path: Path | str) -> list[int]:
    if slices is None:
        return list(range(n))
    bad = [s for s in slices if not -n <= s < n]
    if bad:
        raise InputError(path, f"slice indices {bad} out of range for {n} slices", field="slices")
    if not slices:
        raise InputError(path, "no slices selected", field="slices")
    return [s % n for s in slices]


# ----------------------------------------------------------------------------------------------------- data


def fastmri_data(*, path: str, sha256: str | None = None, slices: list[int] | None = None) -> Volume:
    """A fastMRI multi-coil HDF5 file: ``kspace`` (S, C, H, W), and ``reconstruction_rss``/``mask`` if stored.

    Args:
        path: the ``.h5`` file (relative paths are taken from the job file's folder).
        sha256: expected checksum of the file; a mismatch is an error.
        slices: slice indices to reconstruct (default all).
    """
    from ..io import fastmri

    digest = verify_sha256(path, sha256)
    info = fastmri.read_info(path)
    if not info.multicoil:
        raise InputError(
            path, "expected multi-coil k-space (slices, coils, H, W), got single-coil", field="kspace"
        )
    chosen = _select_slices(info.num_slices, slices, path)
    read = [fastmri.read_slice(path, s) for s in chosen]
    kspace = torch.stack([r.kspace for r in read]).to(torch.complex64)
    reference = torch.stack([r.target for r in read]) if all(r.target is not None for r in read) else None
    mask = read[0].mask
    attrs = {**info.attrs, "recon_size": list(info.recon_size), "slices": chosen}
    if info.pixel_spacing is not None:
        attrs["pixel_spacing_mm"] = list(info.pixel_spacing)
    return Volume(
        "mri", Path(path), kspace=kspace, reference=reference, mask=mask, attrs=attrs, sha256=digest
    )


def nifti_data(
    *, path: str, sha256: str | None = None, slices: list[int] | None = None, hu: bool = True
) -> Volume:
    """A CT volume in NIfTI; the measurements are simulated from it by the operator (sparse-view studies).

    Args:
        path: the ``.nii``/``.nii.gz`` file; axial slices along the last axis (RAS orientation).
        sha256: expected checksum of the file.
        slices: axial slice indices (default all).
        hu: the file holds Hounsfield units (converted to attenuation in 1/mm, see ``medrecon.io.hu``).
    """
    from ..io import nifti

    digest = verify_sha256(path, sha256)
    vol = nifti.read_nifti(path)
    data = np.asarray(vol.data, dtype=np.float32)
    if data.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got shape {data.shape}", field="data")
    if not np.isfinite(data).all():
        raise InputError(path, "volume contains NaN or Inf values", field="data")
    if hu:
        data = hu_to_mu(data)
    stack = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, -1, 0)))
    chosen = _select_slices(stack.shape[0], slices, path)
    image = stack[chosen]
    return Volume(
        "ct",
        Path(path),
        image=image,
        reference=image,
        affine=vol.affine,
        attrs={"hu": hu, "max": float(image.max())},
        sha256=digest,
    )


def dicom_data(*, path: str, series_uid: str | None = None) -> Volume:
    """A CT series from a DICOM folder (HU, converted to attenuation in 1/mm); the operator simulates its
    sinograms, and DICOM outputs copy its geometry and patient/study tags into a new series.

    Axial series only (slice normal within ``medrecon.io.dicom.AXIAL_TOLERANCE_DEG`` of the patient z axis),
    with square pixels: the projectors reconstruct axial slices.

    Args:
        path: the folder of the series' slice files.
        series_uid: which series when the folder holds several.
    """
    from ..io import dicom

    series = dicom.read_dicom_series(path, series_uid, require_square_pixels=True, require_axial=True)
    image = hu_to_mu(series.hu)
    stack = torch.from_numpy(np.ascontiguousarray(image))
    return Volume("ct", Path(path), image=stack, reference=stack, affine=nifti_affine_of_dicom(series.affine),
                  attrs={"hu": True, "max": float(stack.max()), "dicom_source": series})


def sinogram_data(*, path: str, sha256: str | None = None, slices: list[int] | None = None) -> Volume:
    """Measured CT sinograms with their geometry (HDF5, or .npy + JSON sidecar: ``medrecon.io.sinogram``), for
    ``operator.kind = "measured_ct"``; the file's optional reference image (HU or 1/mm) gives the metrics.

    Two components rather than one: the data kind reads and checks the file (shapes against the geometry,
    NaN/Inf, the reference, checksum, slice selection) like every other data kind, and the operator kind builds
    the projector and chooses the views, like the simulated kinds do from an image volume; a measured sinogram
    paired with a simulating operator (or an image volume with ``measured_ct``) is a one-line ``ConfigError``.

    Args:
        path: ``.h5``/``.hdf5``, or ``.npy`` with ``<stem>.json`` beside it; sinograms ``(slices, views,
            detector cells)`` of line integrals (attenuation in 1/mm times mm).
        sha256: expected checksum of the sinogram file.
        slices: slice indices (default all).
    """
    from ..io.sinogram import read_sinogram

    digest = verify_sha256(path, sha256)
    measured = read_sinogram(path)
    chosen = _select_slices(measured.sinogram.shape[0], slices, path)
    sinogram = torch.from_numpy(np.ascontiguousarray(measured.sinogram[chosen]))
    reference = None if measured.reference is None else torch.from_numpy(
        np.ascontiguousarray(measured.reference[chosen]))
    geometry = measured.geometry
    attrs: dict[str, Any] = {"hu": True, "ct_geometry": geometry, "slice_spacing_mm": measured.slice_spacing_mm,
                             "reference_units": measured.reference_units, "slices": chosen}
    if reference is not None:
        attrs["max"] = float(reference.max())
    if measured.noise_std is not None:
        attrs["noise_std"] = measured.noise_std
    affine = np.diag([geometry.pixel_size, geometry.pixel_size, measured.slice_spacing_mm, 1.0])
    return Volume("ct", Path(path), sinogram=sinogram, reference=reference, affine=affine, attrs=attrs,
                  sha256=digest)


def nifti_affine_of_dicom(affine_lps: np.ndarray) -> np.ndarray:
    """The NIfTI affine (``(row, col, slice)`` voxel indices to RAS mm, the convention of NIfTI volumes read
    here) of a DICOM series affine (``(col, row, slice)`` indices to LPS mm)."""
    swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine_lps, dtype=np.float64) @ swap


def shepp_logan_volume(size: int, slices: int) -> np.ndarray:
    """A 3D Shepp-Logan-like phantom ``(slices, size, size)`` in Hounsfield units.

    Recipe: scikit-image's 2D Shepp-Logan phantom resized to ``size``; at height ``z`` in ``[-0.8, 0.8]`` it
    is shrunk by ``sqrt(1 - z^2)`` about the centre (ellipsoidal cross-sections); intensities ``v`` are mapped
    to HU piecewise linearly through ``(0, 0.1, 0.2, 0.3, 0.4, 1) -> (0, 20, 40, 60, 80, 1000)`` inside the
    head and ``-1000`` (air) outside.
    """
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = shepp_logan_phantom()
    out = np.full((slices, size, size), -1000.0, dtype=np.float32)
    for k, z in enumerate(np.linspace(-0.8, 0.8, slices)):
        side = max(2, round(size * np.sqrt(1 - z * z)) // 2 * 2)
        v = resize(base, (side, side), order=1, anti_aliasing=True, preserve_range=True)
        hu = np.where(
            v > 1e-3, np.interp(v, [0, 0.1, 0.2, 0.3, 0.4, 1.0], [0, 20, 40, 60, 80, 1000]), -1000.0
        )
        pad = (size - side) // 2
        out[k, pad : pad + side, pad : pad + side] = hu
    return out


def heldout_phantom_volume(size: int, slices: int) -> np.ndarray:
    """``slices`` random anatomy phantoms ``(slices, size, size)`` in HU from the seeds the shipped CT prior
    never saw in training (``medrecon.training.datasets.CT_HELDOUT_SEEDS``)."""
    from ..training.datasets import CT_HELDOUT_SEEDS, random_ct_phantom

    if slices > len(CT_HELDOUT_SEEDS):
        raise ConfigError(f"data.slices = {slices}: at most {len(CT_HELDOUT_SEEDS)} held-out phantoms")
    return np.stack([random_ct_phantom(seed, size) for seed in CT_HELDOUT_SEEDS[:slices]]).astype(np.float32)


@value_ranges(size=Range(8), slices=_ONE)
def ct_phantom_data(
    *, phantom: Literal["heldout", "shepp_logan"] = "heldout", size: int = 128, slices: int = 4
) -> Volume:
    """A simulated CT volume in HU, written to phantom.nii.gz in the output folder (no input file needed).

    Args:
        phantom: ``heldout`` (random anatomy phantoms the shipped CT prior was not trained on) or
            ``shepp_logan`` (a 3D Shepp-Logan-like head, see ``shepp_logan_volume``).
        size: in-plane pixels.
        slices: axial slices.
    """
    if size < 8 or slices < 1:
        raise ConfigError(f"data.size = {size}, data.slices = {slices}: need size >= 8 and slices >= 1")
    hu = heldout_phantom_volume(size, slices) if phantom == "heldout" else shepp_logan_volume(size, slices)
    image = torch.from_numpy(hu_to_mu(hu))
    return Volume(
        "ct",
        None,
        image=image,
        reference=image,
        affine=np.eye(4),
        attrs={"hu": True, "phantom": phantom, "max": float(image.max())},
    )


def hu_to_mu(hu: np.ndarray) -> np.ndarray:
    """HU -> linear attenuation in 1/mm (``medrecon.io.hu``: water 0.0192/mm, air 0), float32."""
    from ..io.hu import hu_to_mu as convert

    return convert(torch.as_tensor(np.asarray(hu, dtype=np.float32))).numpy().astype(np.float32)


# ------------------------------------------------------------------------------------------------- operators


ESPIRIT_MIN_LINES = 3  # ESPIRiT calibrates on all centre columns x 64 readout rows; kernels narrow to
# (lines + 1) // 2 columns, so 5 lines (fastMRI 8x at 128 columns) use 6x3 kernels; 2 lines leave 6x1


def _coil_maps(y: torch.Tensor, method: str, calib_width: int, kernel: int, calib_height: int) -> torch.Tensor:
    """Coil maps ``(S, C, H, W)`` from the ``calib_width`` fully sampled centre columns of ``y`` (ESPIRiT: by
    ``calib_height`` readout rows)."""
    from operators import coil_maps

    if method == "espirit":
        return coil_maps.espirit_maps(y, calib_width=calib_width, calib_height=calib_height, kernel_width=kernel)
    return coil_maps.lowres_maps(y, calib_width=min(calib_width, *y.shape[-2:]))


@value_ranges(acceleration=_ONE, center_fraction=Range(0, 1, lo_open=True), calib_width=_ONE,
              calib_height=_ONE, espirit_kernel=_ONE, coils=_ONE)
def multicoil_mri_operator(
    volume: Volume,
    generator: torch.Generator,
    *,
    mask: Literal["equispaced", "equispaced_fraction", "random", "random_fixed", "file", "planned"] = "equispaced",
    mask_file: str | None = None,
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    coil_maps: Literal["espirit", "lowres"] = D.COIL_MAPS.method,  # type: ignore[assignment]
    calib_width: int | None = None,
    calib_height: int = D.COIL_MAPS.calib_height,
    espirit_kernel: int = D.COIL_MAPS.espirit_kernel,
    readout_crop: bool = True,
    coils: int | None = None,
) -> VolumeProblem:
    """Multi-coil Cartesian MRI ``A = Subsample(mask) @ FFT2c @ Coils(smaps)`` on the full k-space grid, coil maps
    from the calibration region of the undersampled k-space; outputs are centre-cropped to the file's recon size.

    Args:
        mask: fastMRI mask function (``random``, ``equispaced``, ``equispaced_fraction``); ``random_fixed``:
            random lines but exactly ``round(W / acceleration)`` of them for every seed (``random`` keeps each
            line independently, so its count varies with ``run.seed``); or ``file`` to use the mask stored with
            undersampled (test-set) k-space; or ``planned`` to read ``mask_file``.
        mask_file: with ``mask = "planned"``: a ``.npy`` column mask written by ``medrecon plan-mask``
            (``(W,)`` or ``(1, W)`` one mask for every slice, ``(S, W)`` one per slice).
        acceleration: undersampling factor R (not used by ``file`` and ``planned`` masks).
        center_fraction: fully sampled centre fraction (fastMRI: 0.08 at 4x, 0.04 at 8x).
        coil_maps: ``lowres`` (fast low-resolution maps) or ``espirit`` (ESPIRiT on all fully sampled centre
            columns x 64 readout rows; works from 3 centre lines, e.g. fastMRI's 10 at 4x and 5 at 8x of 128).
        calib_width: calibration columns (default: every fully sampled centre column of the masked data).
        calib_height: ESPIRiT calibration rows along the fully sampled readout (capped at the k-space height).
        espirit_kernel: ESPIRiT kernel side, narrowed to ``(calib_width + 1) // 2`` columns when fewer lines.
        readout_crop: reconstruct on the recon size's rows only (fastMRI knee: 640 oversampled readout rows ->
            320): maps are estimated on the full grid and cropped, the measured k-space is moved to the centre
            rows by :func:`operators.mri.crop_readout` (exact along the fully sampled readout; the signal outside
            the recon field of view is dropped). ``false`` samples on the full k-space grid.
        coils: expected coil count (a file with another count is an error).
    """
    from operators import masks
    from operators.coil_maps import center_columns
    from operators.mri import crop_readout, multicoil_mri

    assert volume.kspace is not None
    path = volume.path or "data"
    kspace = volume.kspace
    n_slices, n_coils, h, w = kspace.shape
    if coils is not None and coils != n_coils:
        raise InputError(
            path, f"operator expects {coils} coils but the k-space has {n_coils}", field="kspace"
        )
    if mask == "file":
        if volume.mask is None:
            raise InputError(path, 'operator.mask = "file" but the file has no mask dataset', field="mask")
        m = volume.mask.reshape(-1) if volume.mask.ndim == 1 or volume.mask.shape[0] == 1 else volume.mask
        if m.shape[-1] != w:
            raise InputError(path, f"mask has {m.shape[-1]} columns, k-space has {w}", field="mask")
        if not bool(m.any()):
            raise InputError(path, "the sampling mask is empty (no sampled k-space lines)", field="mask")
    elif mask == "planned":
        if mask_file is None:
            raise ConfigError('operator.mask = "planned" needs operator.mask_file (a mask from medrecon plan-mask)')
        m = read_planned_mask(mask_file, n_slices, w)
    else:
        if mask_file is not None:
            raise ConfigError(f'operator.mask_file is set but operator.mask = "{mask}"; use mask = "planned"')
        makers = {
            "random": masks.random_mask,
            "random_fixed": masks.random_fixed_mask,
            "equispaced": masks.equispaced_mask,
            "equispaced_fraction": masks.equispaced_fraction_mask,
        }
        try:
            made = makers[mask](
                w,
                int(acceleration) if mask == "equispaced" else acceleration,
                generator,
                center_fraction=center_fraction,
            )
        except ValueError as err:
            raise ConfigError(f"operator: cannot build a {mask} mask: {err}") from None
        m = made.mask
        if not bool(m.any()):
            raise ConfigError("operator: the sampling mask is empty (no sampled k-space lines)")
    mask_cols = m.to(torch.bool)
    if mask_cols.ndim == 2:  # one mask per slice: (S, 1, 1, W) broadcasts over coils and rows
        mask_cols = mask_cols[:, None, None, :] if mask_cols.shape[0] > 1 else mask_cols[0]
    y = torch.where(mask_cols, kspace, torch.zeros((), dtype=kspace.dtype))
    if not bool((y != 0).any()):
        raise InputError(path, "the measured k-space is all zero", field="kspace")
    center = center_columns(mask_cols.reshape(1, 1, -1, w))  # the mask's centred block (file masks included)
    if center < 2:
        raise ConfigError(
            f"operator: only {center} fully sampled centre lines; coil maps need at least 2 "
            "(raise operator.center_fraction)"
        )
    width = center if calib_width is None else calib_width
    if not 0 < width <= center:
        raise ConfigError(
            f"operator.calib_width = {calib_width}: the data has {center} fully sampled centre lines; "
            f"use 1 to {center} (or leave it unset)"
        )
    minimum = ESPIRIT_MIN_LINES if coil_maps == "espirit" else 2
    if width < minimum:
        raise ConfigError(
            f'operator.coil_maps = "{coil_maps}" needs at least {minimum} calibration lines, this mask gives '
            f"{width}; raise operator.calib_width or operator.center_fraction"
        )
    if espirit_kernel < 1:
        raise ConfigError(f"operator.espirit_kernel = {espirit_kernel}: need a kernel of at least 1")
    try:
        smaps = _coil_maps(y, coil_maps, width, espirit_kernel, calib_height)
    except ValueError as err:
        raise ConfigError(f'operator.coil_maps = "{coil_maps}": {err}') from None
    ref = volume.reference
    recon_size = volume.attrs.get("recon_size", (h, w))
    crop = (
        (int(recon_size[0]), int(recon_size[1])) if ref is None else (int(ref.shape[-2]), int(ref.shape[-1]))
    )
    crop = (min(crop[0], h), min(crop[1], w))
    full_grid = (h, w)
    if readout_crop and crop[0] < h:
        top = (h - crop[0]) // 2
        y, smaps, h = crop_readout(y, crop[0]), smaps[..., top : top + crop[0], :], crop[0]
    sampled = float(mask_cols.float().mean())

    def operator_for(sl: slice) -> torch.nn.Module:
        return multicoil_mri(smaps[sl], mask_cols if mask_cols.ndim == 1 else mask_cols[sl])

    info = {
        "modality": "mri",
        "slices": n_slices,
        "coils": n_coils,
        "matrix": [h, w],
        "kspace_grid": list(full_grid),
        "crop": list(crop),
        "mask": mask,
        "acceleration_nominal": acceleration,
        "acceleration": round(1.0 / sampled, 3),
        "lines": int(mask_cols.reshape(-1, w).sum(-1).max()),
        "lines_total": w,
        "center_lines": center,
        "coil_maps": coil_maps,
        "calib_width": width,
        "calib_height": min(calib_height, full_grid[0]),
    }
    shown = mask_cols if mask_cols.ndim == 1 else mask_cols.reshape(-1, w)[n_slices // 2]  # the figure's slice
    return VolumeProblem(y, operator_for, (h, w), torch.complex64, crop, mask=shown, info=info)


def read_planned_mask(path: str | Path, n_slices: int, width: int, data: str = "this k-space") -> torch.Tensor:
    """A planned column mask from ``.npy`` (no pickles): ``(W,)``, ``(1, W)`` or ``(S, W)`` bool (or 0/1);
    ``InputError`` naming the file (and what ``data`` needs) for anything else."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy mask ({err})", field="mask") from None
    if arr.dtype != np.bool_ and not (np.issubdtype(arr.dtype, np.integer) and set(np.unique(arr)) <= {0, 1}):
        raise InputError(path, f"mask must be boolean (or 0/1), got {arr.dtype}", field="mask")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != width or arr.shape[0] not in (1, n_slices):
        raise InputError(path, f"mask has shape {tuple(arr.shape)}; {data} needs ({width},), (1, {width}) "
                         f"or ({n_slices}, {width})", field="mask")
    arr = arr.astype(bool)
    if not bool(arr.any(-1).all()):
        raise InputError(path, "the mask samples no line in some slice", field="mask")
    return torch.from_numpy(arr)


def _ct_problem(
    volume: Volume, generator: torch.Generator, op: torch.nn.Module, noise: float, info: dict[str, Any],
    operator_for: Callable[[slice], Any] | None = None,
) -> VolumeProblem:
    """Simulated sinograms of ``op`` (the operator of every slice at once) with noise; ``operator_for`` gives
    the operator of a chunk when slices differ (planned views), else ``op`` serves every chunk."""
    image = volume.image
    assert image is not None
    with torch.no_grad():
        y = op(image)
    noise_std = noise * float(y.abs().max())
    if noise > 0:
        y = y + noise_std * torch.randn(y.shape, generator=generator, dtype=y.dtype)
    return _ct_volume_problem(y, operator_for or (lambda sl: op), tuple(image.shape[-2:]),
                              {"noise": noise, **info, "noise_std": noise_std})


def _ct_volume_problem(y: torch.Tensor, operator_for: Callable[[slice], Any], image_shape: tuple[int, ...],
                       info: dict[str, Any]) -> VolumeProblem:
    """The CT problem of sinograms ``y`` ``(S, views, det)`` on images ``image_shape`` ``(H, W)``."""
    h, w = (int(v) for v in image_shape)
    return VolumeProblem(y, operator_for, (h, w), torch.float32, (h, w), mask=None,
                         info={"modality": "ct", "slices": int(y.shape[0]), "matrix": [h, w], **info})


def _image_volume_needed(volume: Volume, kind: str) -> None:
    """``ConfigError`` when a simulating CT operator gets no image volume (measured sinograms among them)."""
    if volume.image is not None:
        return
    hint = '; measured sinograms (data.kind = "sinogram") take operator.kind = "measured_ct"' \
        if volume.sinogram is not None else ""
    raise ConfigError(f'operator.kind = "{kind}" needs a CT image volume (data kind nifti, dicom or ct_phantom){hint}')


def _arc_deg(angles: tuple[float, ...]) -> float:
    """The angular range that ``angles`` (increasing, evenly spaced or not) cover: span plus one mean step."""
    if len(angles) < 2:
        return 0.0
    return round((angles[-1] - angles[0]) * len(angles) / (len(angles) - 1), 6)


@value_ranges(view_stride=_ONE)
def measured_ct_operator(volume: Volume, generator: torch.Generator, *, view_stride: int = 1) -> VolumeProblem:
    """CT on measured sinograms (``data.kind = "sinogram"``): the projector of the file's geometry (parallel or
    fan beam), the measured sinograms as ``y``.

    Args:
        view_stride: keep every ``view_stride``-th measured view (1: all), a sparse-view subset of the scan.
    """
    from operators.ct import CTProjector
    from operators.ct_geometry import FanBeamGeometry

    geometry = volume.attrs.get("ct_geometry")
    if volume.sinogram is None or geometry is None:
        raise ConfigError('operator.kind = "measured_ct" needs measured sinograms (data.kind = "sinogram"); image '
                          'volumes take "parallel_beam_ct" or "fan_beam_ct"')
    kept = tuple(geometry.angles_deg[::view_stride])
    op = CTProjector(dataclasses.replace(geometry, angles_deg=kept))
    y = volume.sinogram[:, ::view_stride].contiguous()
    kind = "fan" if isinstance(geometry, FanBeamGeometry) else "parallel"
    info = {"geometry": kind, "views": len(kept), "arc_deg": _arc_deg(kept), "measured_views": geometry.n_views,
            "view_stride": view_stride, "n_det": geometry.n_det, "pixel_size_mm": geometry.pixel_size}
    return _ct_volume_problem(y, lambda sl: op, geometry.image_size, info)


@value_ranges(views=_ONE, arc_deg=_POSITIVE, noise=_NON_NEGATIVE)
def parallel_beam_operator(
    volume: Volume,
    generator: torch.Generator,
    *,
    views: int = 32,
    arc_deg: float = 180.0,
    noise: float = 0.0,
    views_file: str | None = None,
) -> VolumeProblem:
    """Sparse-view parallel-beam CT, slice by slice; the sinograms are simulated from the volume.

    Args:
        views: number of projection angles, uniform over ``arc_deg``.
        arc_deg: angular range in degrees.
        noise: Gaussian sinogram noise std relative to the largest sinogram value.
        views_file: planned views (``medrecon plan-mask``): a bool ``.npy`` over ``N`` candidate angles uniform
            over ``arc_deg``, ``(N,)``/``(1, N)`` for every slice or ``(S, N)`` per slice; replaces ``views``.
    """
    from operators import ct, ct_geometry

    _image_volume_needed(volume, "parallel_beam_ct")
    if views < 1:
        raise ConfigError(f"operator.views = {views}: need at least one view")
    shape = tuple(volume.image.shape[-2:])
    if views_file is not None:
        return _planned_views_problem(volume, generator, views_file, arc_deg, noise, "parallel",
                                      lambda angles: ct.parallel_beam(shape, angles))
    angles = ct_geometry.sparse_view_angles(views, arc_deg)
    op = ct.parallel_beam(shape, angles)
    return _ct_problem(
        volume, generator, op, noise, {"geometry": "parallel", "views": views, "arc_deg": arc_deg}
    )


@value_ranges(views=_ONE, arc_deg=_POSITIVE, source_distance=_POSITIVE, detector_distance=_POSITIVE,
              noise=_NON_NEGATIVE)
def fan_beam_operator(
    volume: Volume,
    generator: torch.Generator,
    *,
    views: int = 32,
    arc_deg: float = 360.0,
    source_distance: float = 500.0,
    detector_distance: float = 1000.0,
    noise: float = 0.0,
    views_file: str | None = None,
) -> VolumeProblem:
    """Sparse-view fan-beam CT (equiangular detector), slice by slice; sinograms simulated from the volume.

    Args:
        views: number of source angles, uniform over ``arc_deg``.
        arc_deg: angular range in degrees (360 for a full scan).
        source_distance: source to isocentre in pixels (1 pixel = 1 mm).
        detector_distance: source to detector in pixels.
        noise: Gaussian sinogram noise std relative to the largest sinogram value.
        views_file: planned views over candidate angles uniform over ``arc_deg`` (as for parallel beam).
    """
    from operators import ct, ct_geometry

    _image_volume_needed(volume, "fan_beam_ct")
    if views < 1:
        raise ConfigError(f"operator.views = {views}: need at least one view")
    shape = tuple(volume.image.shape[-2:])
    if views_file is not None:
        return _planned_views_problem(volume, generator, views_file, arc_deg, noise, "fan",
                                      lambda angles: ct.fan_beam(shape, angles, source_distance, detector_distance))
    angles = ct_geometry.sparse_view_angles(views, arc_deg)
    op = ct.fan_beam(shape, angles, source_distance, detector_distance)
    return _ct_problem(volume, generator, op, noise, {"geometry": "fan", "views": views, "arc_deg": arc_deg})


def read_planned_views(path: str | Path, n_slices: int) -> torch.Tensor:
    """Planned views from ``.npy`` (no pickles): bool ``(N,)``, ``(1, N)`` or ``(S, N)`` over ``N`` candidate
    angles, the same count in every row; ``InputError`` naming the file for anything else."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy views mask ({err})", field="views") from None
    if arr.dtype != np.bool_:
        raise InputError(path, f"views mask must be boolean, got {arr.dtype}", field="views")
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[0] not in (1, n_slices):
        raise InputError(path, f"views mask has shape {tuple(arr.shape)}; need (N,), (1, N) or ({n_slices}, N)",
                         field="views")
    counts = arr.sum(-1)
    if counts.min() < 1 or counts.min() != counts.max():
        raise InputError(path, f"every slice needs the same number (>= 1) of views, got {counts.tolist()}",
                         field="views")
    return torch.from_numpy(arr)


def _planned_views_problem(volume: Volume, generator: torch.Generator, path: str, arc_deg: float, noise: float,
                           geometry: str, projector_of: Callable[[Any], Any]) -> VolumeProblem:
    """CT of planned views: ``SelectRows(views) @ projector(all candidate angles)``, per slice if they differ."""
    from operators import SelectRows, ct_geometry

    planned = read_planned_views(path, volume.num_slices)
    n = planned.shape[-1]
    projector = projector_of(ct_geometry.sparse_view_angles(n, arc_deg))
    idx = torch.nonzero(planned)[:, 1].reshape(planned.shape[0], -1)
    info = {"geometry": geometry, "views": int(idx.shape[1]), "arc_deg": arc_deg, "candidate_views": n,
            "views_file": str(path)}
    if idx.shape[0] == 1:
        return _ct_problem(volume, generator, SelectRows(idx[0], n) @ projector, noise, info)
    every = SelectRows(idx, n, dim=-2, sample_dim=-3) @ projector
    return _ct_problem(volume, generator, every, noise, info,
                       lambda sl: SelectRows(idx[sl], n, dim=-2, sample_dim=-3) @ projector)


# ---------------------------------------------------------------------------------------------------- priors


@value_ranges(window=_NON_NEGATIVE)
def default_prior(volume: Volume, *, modality: Literal["auto", "mri", "ct"] = "auto",
                  name: Literal["auto", "mri", "mri_native", "ct", "ct_head", "ct_head_native"] = "auto",
                  window: int | None = None) -> Any:
    """The small prior shipped with medrecon for the data's modality.

    Args:
        modality: ``auto`` follows the data (``mri`` for k-space, ``ct`` for image volumes).
        name: ``auto``: the modality's default prior (``mri`` or ``ct``), or, when the data states a pixel spacing
            that prior does not serve, the first shipped prior of the modality that does (``shipped_for_spacing``);
            or a shipped prior by name: ``mri_native`` (MR at scanner pixel sizes, 0.6-2.04 mm, heads with air
            around them), ``ct_head`` (CT fine-tuned on synthetic head CT), ``ct_head_native`` (head CT at
            0.45-1.2 mm pixels).
        window: side (pixels) of the overlapping windows larger grids are denoised in; unset: the prior
            sidecar's ``serves.window``; 0: every grid in one pass.
    """
    from ..priors.checkpoint import SHIPPED
    from ..priors.checkpoint import default_prior as shipped

    if modality not in ("auto", volume.modality):
        raise ConfigError(
            f'prior.modality = "{modality}": the data ({volume.path or "simulated"}) is {volume.modality}; '
            f'use "auto" or "{volume.modality}"'
        )
    if name != "auto" and SHIPPED[name] != volume.modality:
        raise ConfigError(f'prior.name = "{name}" is a {SHIPPED[name]} prior; the data is {volume.modality}')
    modality = volume.modality if modality == "auto" else modality
    return shipped(modality, name=shipped_for_spacing(volume) if name == "auto" else name,
                   window=_prior_window(window))


def _prior_window(window: int | None) -> int | None:
    if window is not None and 0 < window < 8:
        raise ConfigError(f"prior.window = {window}: windows need sides >= 8 pixels (0: the whole grid at once)")
    return window


def shipped_for_spacing(volume: Volume) -> str:
    """The shipped prior ``prior.name = "auto"`` picks: the modality's default (``SHIPPED`` order: ``mri``,
    ``ct``) unless the data states a pixel spacing outside that prior's ``serves.pixel_spacing_mm``; then the
    first shipped prior of the modality that serves it (``mri_native`` for fastMRI's 0.5-1 mm pixels). When none
    does, the default, whose spacing check then names the mismatch."""
    from ..priors.checkpoint import DEFAULT_DIR, SHIPPED, read_sidecar
    from ..priors.meta import served_shapes
    from .compat import data_pixel_spacing

    default = volume.modality
    found = data_pixel_spacing(volume)
    if found is None:
        return default
    (dy, dx), _ = found
    candidates = [default] + [n for n, m in SHIPPED.items() if m == volume.modality and n != default]
    for candidate in candidates:
        sidecar = DEFAULT_DIR / f"{candidate}.json"
        if not sidecar.exists():
            continue
        served = served_shapes(read_sidecar(sidecar))
        spacing = None if served is None else served.pixel_spacing_mm
        if spacing is None:
            if candidate == default:
                return default
            continue
        if spacing[0] <= dy <= spacing[1] and spacing[0] <= dx <= spacing[1]:
            return candidate
    return default


@value_ranges(window=_NON_NEGATIVE)
def checkpoint_prior(volume: Volume, *, path: str, window: int | None = None) -> Any:
    """A prior checkpoint: a safetensors file with its JSON sidecar (whose weights sha256 is verified).

    Args:
        path: the sidecar .json, the .safetensors file or a folder holding one pair.
        window: as for the shipped priors (unset: the sidecar's ``serves.window``; 0: one pass).
    """
    from ..priors.checkpoint import load_prior

    return load_prior(path, window=_prior_window(window))


# ------------------------------------------------------------------------------------- samplers and baselines


def sampler_entries() -> dict[str, Callable[..., Any]]:
    """Sampler names -> constructors (see ``medrecon.jobs.sampling``)."""
    from . import sampling

    return dict(sampling.SAMPLERS)


def baseline_entries() -> dict[str, Callable[..., Any]]:
    """Baseline names -> ``recon(y, op) -> x`` with default options."""
    from . import baselines

    return dict(baselines.BASELINES)
