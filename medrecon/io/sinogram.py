"""Measured CT sinograms with the geometry they were acquired in: one HDF5 file, or ``.npy`` plus a JSON sidecar.

The sinogram is ``(S, V, D)``: slices, views, detector cells, float, line integrals of the linear attenuation
``-log(I / I0)`` (attenuation in 1/mm times path length in mm, dimensionless), so that ``CTProjector(geometry)``
applied to attenuation images in 1/mm (``medrecon.io.hu.hu_to_mu`` of HU) reproduces it. The geometry follows
``operators.ct_geometry`` (angles, detector coordinates and image frame as documented there), every length in mm.

HDF5 (``.h5`` / ``.hdf5``): dataset ``sinogram`` ``(S, V, D)``, dataset ``angles_deg`` ``(V,)``, optional dataset
``reference`` ``(S, H, W)``; the other fields are attributes of the file's root.

``.npy``: the sinogram array ``(S, V, D)`` (no pickles); ``<stem>.json`` beside it holds the fields, ``angles_deg``
as a list, and ``reference`` as the name of an ``.npy`` file ``(S, H, W)`` next to the sidecar.

Fields (``FIELDS``): ``geometry`` (``"parallel"`` or ``"fan"``), ``angles_deg`` (one per view, strictly
increasing), ``n_det``, ``det_spacing_mm`` (at the detector; arc length for the equiangular fan detector),
``image_size`` (``N`` or ``[H, W]``: the reconstruction grid), ``pixel_size_mm``; fan beam also
``source_distance_mm`` (source to isocentre) and ``detector_distance_mm`` (source to detector), optional
``detector`` (``"equiangular"``, default, or ``"flat"``); optional everywhere: ``det_offset_mm`` (0),
``slice_spacing_mm`` (1), ``noise_std`` (the sinogram noise std, if known), ``reference_units`` (``"hu"`` or
``"mu"``, required with a reference), ``units`` (free text).
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from operators.ct_geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry

from ..errors import InputError
from ..files import atomic_path

__all__ = ["FIELDS", "SINOGRAM_UNITS", "MeasuredSinogram", "read_sinogram", "write_sinogram"]

SINOGRAM_UNITS = "line integrals of attenuation (1/mm x mm), -log(I/I0)"
FIELDS = (
    "geometry", "angles_deg", "n_det", "det_spacing_mm", "image_size", "pixel_size_mm", "source_distance_mm",
    "detector_distance_mm", "detector", "det_offset_mm", "slice_spacing_mm", "noise_std", "reference",
    "reference_units", "units",
)
_HDF5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class MeasuredSinogram:
    """A measured sinogram and its geometry.

    Attributes:
        sinogram: ``(S, V, D)`` float32 line integrals (``SINOGRAM_UNITS``).
        geometry: the acquisition (``operators.ct_geometry``); ``CTProjector(geometry)`` maps ``(S, H, W)``
            attenuation images in 1/mm to sinograms like this one.
        slice_spacing_mm: distance between slices.
        reference: ``(S, H, W)`` float32 attenuation in 1/mm (converted from HU if stored so), if the file has one.
        reference_units: the stored reference's units, ``"hu"`` or ``"mu"``.
        noise_std: the sinogram noise std the file states, if any.
        files: every file read (sinogram, sidecar, reference).
    """

    sinogram: np.ndarray
    geometry: Geometry
    slice_spacing_mm: float = 1.0
    reference: np.ndarray | None = None
    reference_units: str | None = None
    noise_std: float | None = None
    files: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- field checks


def _check_known(fields: dict[str, Any], source: Path) -> None:
    """A field name close to a known one is a typo (an optional field would silently take its default)."""
    for key in fields:
        if key not in FIELDS:
            match = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.8)
            if match:
                raise InputError(source, f"unknown geometry field {key!r} (did you mean {match[0]!r}?)", field=key)


def _required(fields: dict[str, Any], name: str, source: Path) -> Any:
    if name not in fields or fields[name] is None:
        raise InputError(source, f"missing geometry field {name!r}", field=name)
    return fields[name]


def _text(fields: dict[str, Any], name: str, source: Path, allowed: tuple[str, ...], default: str | None = None
          ) -> str:
    value = fields.get(name, default) if default is not None else _required(fields, name, source)
    value = value.decode() if isinstance(value, bytes) else value
    if value not in allowed:
        raise InputError(source, f"{name} = {value!r}: expected one of {', '.join(map(repr, allowed))}", field=name)
    return str(value)


def _positive(fields: dict[str, Any], name: str, source: Path, default: float | None = None) -> float:
    value = fields.get(name, default) if default is not None else _required(fields, name, source)
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise InputError(source, f"{name} = {value!r}: expected a number", field=name) from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(source, f"{name} = {number:g}: must be a positive finite number (mm)", field=name)
    return number


def _finite(fields: dict[str, Any], name: str, source: Path, default: float) -> float:
    try:
        number = float(np.asarray(fields.get(name, default)).item())
    except (TypeError, ValueError):
        raise InputError(source, f"{name} = {fields.get(name)!r}: expected a number", field=name) from None
    if not math.isfinite(number):
        raise InputError(source, f"{name} = {number:g}: must be finite", field=name)
    return number


def _noise_std(fields: dict[str, Any], source: Path) -> float | None:
    """The stated sinogram noise std (sinogram units, >= 0), or None."""
    if fields.get("noise_std") is None:
        return None
    value = _finite(fields, "noise_std", source, 0.0)
    if value < 0:
        raise InputError(source, f"noise_std = {value:g}: must be >= 0", field="noise_std")
    return value


def _counts(fields: dict[str, Any], name: str, source: Path, n: int) -> tuple[int, ...]:
    """A positive integer, or ``n`` of them (``image_size``: ``N`` means ``N x N``)."""
    arr = np.atleast_1d(np.asarray(_required(fields, name, source)))
    if arr.ndim != 1 or arr.size not in (1, n) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(source, f"{name} = {arr.tolist()!r}: expected {'an integer' if n == 1 else f'N or {n} integers'}",
                         field=name)
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 1):
        raise InputError(source, f"{name} = {arr.tolist()!r}: must be positive integers", field=name)
    values = tuple(int(v) for v in arr)
    return values * n if len(values) == 1 else values


def _angles(fields: dict[str, Any], source: Path) -> tuple[float, ...]:
    arr = np.asarray(_required(fields, "angles_deg", source))
    if arr.ndim != 1 or arr.size < 1 or not np.issubdtype(arr.dtype, np.number):
        raise InputError(source, f"angles_deg: expected a list of view angles in degrees, got shape {arr.shape}",
                         field="angles_deg")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(source, "angles_deg contains NaN or Inf", field="angles_deg")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise InputError(source, "angles_deg must be strictly increasing (the order of the gantry rotation; "
                         "reverse the view axis of a sinogram acquired the other way)", field="angles_deg")
    return tuple(float(a) for a in arr)


def _geometry(fields: dict[str, Any], source: Path) -> Geometry:
    """The ``operators.ct_geometry`` dataclass the fields describe; ``InputError`` naming the bad field."""
    _check_known(fields, source)
    kind = _text(fields, "geometry", source, ("parallel", "fan"))
    angles = _angles(fields, source)
    (n_det,) = _counts(fields, "n_det", source, 1)
    size = _counts(fields, "image_size", source, 2)
    spacing = _positive(fields, "det_spacing_mm", source)
    pixel = _positive(fields, "pixel_size_mm", source)
    offset = _finite(fields, "det_offset_mm", source, 0.0)
    if kind == "parallel":
        return ParallelBeamGeometry((size[0], size[1]), angles, n_det, spacing, pixel, offset)
    source_distance = _positive(fields, "source_distance_mm", source)
    detector_distance = _positive(fields, "detector_distance_mm", source)
    detector = _text(fields, "detector", source, ("equiangular", "flat"), default="equiangular")
    if detector_distance <= source_distance:
        raise InputError(source, f"detector_distance_mm = {detector_distance:g} must exceed source_distance_mm = "
                         f"{source_distance:g} (both measured from the source)", field="detector_distance_mm")
    radius = 0.5 * math.hypot(*size) * pixel
    if source_distance <= radius:
        raise InputError(source, f"source_distance_mm = {source_distance:g} puts the source inside the image "
                         f"(radius {radius:.1f} mm)", field="source_distance_mm")
    return FanBeamGeometry((size[0], size[1]), angles, n_det, source_distance, detector_distance, detector,  # type: ignore[arg-type]
                           spacing, pixel, offset)


def _array(value: Any, source: Path, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(source, f"{name} must be a real numeric array, got dtype {arr.dtype}", field=name)
    if arr.ndim != ndim:
        layout = "(slices, views, detector cells)" if name == "sinogram" else "(slices, H, W)"
        raise InputError(source, f"{name} has shape {arr.shape}; expected {ndim} axes {layout}", field=name)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(source, f"{name} contains {int((~np.isfinite(arr)).sum())} NaN or Inf values", field=name)
    return arr


def _check_shapes(sino: np.ndarray, geometry: Geometry, reference: np.ndarray | None, geometry_source: Path,
                  reference_source: Path) -> None:
    """Views and detector cells against the geometry, the reference against the slices and image size."""
    slices, views, cells = sino.shape
    if views != geometry.n_views:
        raise InputError(geometry_source, f"the sinogram {sino.shape} has {views} views but angles_deg lists "
                         f"{geometry.n_views}", field="angles_deg")
    if cells != geometry.n_det:
        raise InputError(geometry_source, f"the sinogram {sino.shape} has {cells} detector cells but n_det = "
                         f"{geometry.n_det}", field="n_det")
    if reference is not None and reference.shape != (slices, *geometry.image_size):
        raise InputError(reference_source, f"the reference has shape {reference.shape}; the sinogram "
                         f"{sino.shape} and image_size {list(geometry.image_size)} need "
                         f"{(slices, *geometry.image_size)}", field="reference")


def _reference_mu(reference: np.ndarray, units: str) -> np.ndarray:
    """The reference in attenuation 1/mm (``medrecon.io.hu.hu_to_mu`` of HU)."""
    if units == "mu":
        return reference
    import torch

    from .hu import hu_to_mu

    return hu_to_mu(torch.from_numpy(reference)).numpy().astype(np.float32)


# ------------------------------------------------------------------------------------------------- reading


def _read_hdf5(path: Path) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    import h5py

    try:
        with h5py.File(path, "r") as hf:
            if "sinogram" not in hf:
                raise InputError(path, "no 'sinogram' dataset (slices, views, detector cells)", field="sinogram")
            sino = hf["sinogram"][()]
            fields: dict[str, Any] = dict(hf.attrs.items())
            if "angles_deg" in hf:
                fields["angles_deg"] = hf["angles_deg"][()]
            reference = hf["reference"][()] if "reference" in hf else None
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 file ({err})") from None
    return sino, fields, reference


def _load_npy(path: Path, name: str) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file not found", field=name)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array ({err})", field=name) from None


def _read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise InputError(path, f"no geometry sidecar {sidecar.name} beside the .npy sinogram", field="sidecar")
    try:
        fields = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(sidecar, f"not a readable JSON sidecar ({err})", field="sidecar") from None
    if not isinstance(fields, dict):
        raise InputError(sidecar, "the sidecar must be a JSON object of geometry fields", field="sidecar")
    return fields


def read_sinogram(path: str | Path) -> MeasuredSinogram:
    """Read a measured sinogram ``(S, V, D)`` with its geometry from HDF5 or ``.npy`` + sidecar (module docstring).

    Raises:
        InputError: one line naming the file and the field, for a missing file or sidecar, missing or unknown
            geometry fields, an unknown geometry kind, non-positive distances or spacings, shapes that disagree
            with the geometry (views, detector cells, the reference's slices or size), NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    files = [path]
    if path.suffix.lower() in _HDF5_SUFFIXES:
        raw, fields, raw_reference = _read_hdf5(path)
        geometry_source = reference_source = path
    elif path.suffix.lower() == ".npy":
        raw = _load_npy(path, "sinogram")
        fields = _read_sidecar(path)
        geometry_source = path.with_suffix(".json")
        files.append(geometry_source)
        raw_reference, reference_source = None, geometry_source
        if fields.get("reference") is not None:
            if not isinstance(fields["reference"], str):
                raise InputError(geometry_source, "reference must name an .npy file beside the sidecar",
                                 field="reference")
            reference_source = geometry_source.parent / fields["reference"]
            raw_reference = _load_npy(reference_source, "reference")
            files.append(reference_source)
    else:
        raise InputError(path, f"unknown sinogram format {path.suffix!r}: expected .h5, .hdf5 or .npy")
    geometry = _geometry(fields, geometry_source)
    sino = _array(raw, path, "sinogram", 3)
    reference, units = None, None
    if raw_reference is not None:
        units = _text(fields, "reference_units", geometry_source, ("hu", "mu"))
        reference = _array(raw_reference, reference_source, "reference", 3)
    _check_shapes(sino, geometry, reference, geometry_source, reference_source)
    return MeasuredSinogram(
        sinogram=sino,
        geometry=geometry,
        slice_spacing_mm=_positive(fields, "slice_spacing_mm", geometry_source, default=1.0),
        reference=None if reference is None else _reference_mu(reference, units or "mu"),
        reference_units=units,
        noise_std=_noise_std(fields, geometry_source),
        files=files,
    )


# ------------------------------------------------------------------------------------------------- writing


def _fields_of(geometry: Geometry) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "geometry": "parallel" if isinstance(geometry, ParallelBeamGeometry) else "fan",
        "angles_deg": [float(a) for a in geometry.angles_deg],
        "n_det": int(geometry.n_det),
        "det_spacing_mm": float(geometry.det_spacing),
        "image_size": [int(v) for v in geometry.image_size],
        "pixel_size_mm": float(geometry.pixel_size),
        "det_offset_mm": float(geometry.det_offset),
    }
    if isinstance(geometry, FanBeamGeometry):
        fields.update(source_distance_mm=float(geometry.source_distance),
                      detector_distance_mm=float(geometry.detector_distance), detector=geometry.detector)
    return fields


def write_sinogram(
    path: str | Path,
    sinogram: Any,
    geometry: Geometry,
    reference: Any = None,
    reference_units: str = "mu",
    slice_spacing_mm: float = 1.0,
    noise_std: float | None = None,
) -> list[Path]:
    """Write a sinogram ``(S, V, D)`` (numpy or torch; ``SINOGRAM_UNITS``) with its geometry, atomically.

    Args:
        path: ``.h5``/``.hdf5`` (one file) or ``.npy`` (plus ``<stem>.json`` and, with a reference,
            ``<stem>_reference.npy``).
        sinogram: line integrals, ``(slices, views, detector cells)``.
        geometry: a projector's ``geometry`` (``operators.ct_geometry``: ``ParallelBeamGeometry`` or
            ``FanBeamGeometry``; lengths in mm).
        reference: optional image ``(S, H, W)`` for metrics, in ``reference_units``.
        reference_units: ``"hu"`` or ``"mu"`` (attenuation in 1/mm).
        slice_spacing_mm: distance between slices.
        noise_std: the sinogram noise std, if known (``run.sigma_y = "auto"`` then uses it).

    Returns:
        The written files. The arrays and fields are checked by the reader's rules before anything is written.
    """
    path = Path(path)
    fields = {**_fields_of(geometry), "slice_spacing_mm": float(slice_spacing_mm), "units": SINOGRAM_UNITS}
    if noise_std is not None:
        fields["noise_std"] = float(noise_std)
        _noise_std(fields, path)
    sino = _array(_numpy(sinogram), path, "sinogram", 3)
    ref = None if reference is None else _array(_numpy(reference), path, "reference", 3)
    if ref is not None:
        fields["reference_units"] = _text({"reference_units": reference_units}, "reference_units", path, ("hu", "mu"))
    checked = _geometry(fields, path)
    _positive(fields, "slice_spacing_mm", path)
    _check_shapes(sino, checked, ref, path, path)
    if path.suffix.lower() in _HDF5_SUFFIXES:
        return [_write_hdf5(path, sino, fields, ref)]
    if path.suffix.lower() == ".npy":
        return _write_npy(path, sino, fields, ref)
    raise InputError(path, f"unknown sinogram format {path.suffix!r}: expected .h5, .hdf5 or .npy")


def _numpy(value: Any) -> np.ndarray:
    detach = getattr(value, "detach", None)
    return np.asarray(detach().cpu().numpy() if detach is not None else value)


def _write_hdf5(path: Path, sino: np.ndarray, fields: dict[str, Any], reference: np.ndarray | None) -> Path:
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("sinogram", data=sino)
        hf.create_dataset("angles_deg", data=np.asarray(fields["angles_deg"], dtype=np.float64))
        if reference is not None:
            hf.create_dataset("reference", data=reference)
        for key, value in fields.items():
            if key != "angles_deg":
                hf.attrs[key] = value
    return path


def _write_npy(path: Path, sino: np.ndarray, fields: dict[str, Any], reference: np.ndarray | None) -> list[Path]:
    written = []
    if reference is not None:
        ref_path = path.with_name(f"{path.stem}_reference.npy")
        fields = {**fields, "reference": ref_path.name}
        written.append(_save_npy(ref_path, reference))
    sidecar = path.with_suffix(".json")
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    return [_save_npy(path, sino), sidecar, *written]


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path
