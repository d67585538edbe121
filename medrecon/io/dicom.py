"""DICOM series of CT slices with pydicom (imported inside functions).

Reading: the files of one folder are grouped by SeriesInstanceUID, ordered by ImagePositionPatient projected on
the slice normal (``row_dir x col_dir`` from ImageOrientationPatient) and converted to HU with
RescaleSlope / RescaleIntercept. Compressed transfer syntaxes decode through pydicom's plug-ins (the
``dicom-codecs`` extra installs pylibjpeg with its JPEG, JPEG-LS and JPEG 2000 decoders).

Writing: a volume becomes a NEW series (new SeriesInstanceUID and SOPInstanceUIDs, ImageType
``DERIVED\\SECONDARY``) whose geometry and patient/study tags are copied from a source series, or built from a
given spacing / origin / orientation. HU are stored as int16 with slope 1 (values rounded to 1 HU) or a larger
slope when the range exceeds int16. The series is written to a hidden temporary folder that is renamed into place.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import ensure_writable_dir

__all__ = ["AXIAL_TOLERANCE_DEG", "CT_IMAGE_STORAGE", "DicomSeries", "read_dicom_series", "write_dicom_series"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_CODECS_HINT = "install the decoders with: pip install 'medrecon[dicom-codecs]' (pylibjpeg and its plug-ins)"
_SPACING_RTOL = 0.01
AXIAL_TOLERANCE_DEG = 5.0  # an axial series' slice normal lies within this angle of the patient z axis
_COPIED_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID",
    "PositionReferenceIndicator", "Manufacturer", "KVP", "PatientPosition", "BodyPartExamined",
)


@dataclass
class DicomSeries:
    """One CT series as a volume.

    Attributes:
        hu: HU values, ``(D, H, W)`` float32, slices ordered along the slice normal.
        spacing: ``(dz, dy, dx)`` in mm (slice step, row spacing, column spacing).
        affine: 4x4 map from ``(col, row, slice, 1)`` indices to patient LPS coordinates in mm.
        orientation: ImageOrientationPatient, ``(6,)`` (row direction cosines, then column direction cosines).
        positions: ImagePositionPatient of each slice, ``(D, 3)``.
        series_uid: SeriesInstanceUID.
        files: source file of each slice.
        headers: the slices' datasets without pixel data (templates for ``write_dicom_series``).
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    orientation: np.ndarray
    positions: np.ndarray
    series_uid: str
    files: list[Path] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list, repr=False)


def _read_headers(folder: Path) -> list[tuple[Path, Any]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            continue  # not a DICOM file (no preamble / DICM prefix): ignore, like other readers
        except Exception as err:  # noqa: BLE001 - readers raise many types for corrupt files
            raise InputError(path, f"unreadable DICOM header ({type(err).__name__}: {err})") from None
        if "SOPClassUID" not in ds and "PixelData" not in ds and "Rows" not in ds:
            continue
        found.append((path, ds))
    return found


def _require(ds: Any, path: Path, name: str) -> Any:
    value = ds.get(name)
    if value is None or (hasattr(value, "__len__") and not isinstance(value, (int, float)) and len(value) == 0):
        raise InputError(path, f"missing {name}", name)
    return value


def _pixels(path: Path) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # noqa: BLE001 - readers raise many types for corrupt files
        raise InputError(path, f"unreadable DICOM file ({type(err).__name__}: {err})") from None
    if "PixelData" not in ds:
        raise InputError(path, "missing pixel data", "PixelData")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        arr = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - readers raise many types for corrupt files
        if syntax is not None and syntax.is_compressed:
            raise InputError(path, f"cannot decode compressed transfer syntax {syntax.name} ({err}); {_CODECS_HINT}",
                             "TransferSyntaxUID") from None
        raise InputError(path, f"truncated or inconsistent pixel data ({type(err).__name__}: {err})",
                         "PixelData") from None
    if arr.ndim != 2:
        raise InputError(path, f"expected one 2D frame per file, got pixel array of shape {arr.shape}", "PixelData")
    return arr


def _check_axial(normal: np.ndarray, path: Path) -> None:
    """``InputError`` naming ``path`` and ImageOrientationPatient unless the slice normal is within
    ``AXIAL_TOLERANCE_DEG`` of the patient z axis (sagittal, coronal and oblique series are refused)."""
    tilt = float(np.degrees(np.arccos(min(1.0, abs(normal[2]) / max(float(np.linalg.norm(normal)), 1e-12)))))
    if tilt > AXIAL_TOLERANCE_DEG:
        raise InputError(path, f"not an axial series: the slice normal {np.round(normal, 3).tolist()} is "
                         f"{tilt:.1f} degrees from the patient z axis (at most {AXIAL_TOLERANCE_DEG:g}); the CT "
                         "projectors need axial slices", "ImageOrientationPatient")


def read_dicom_series(folder: str | Path, series_uid: str | None = None,
                      require_square_pixels: bool = False, require_axial: bool = False) -> DicomSeries:
    """Read one CT series from ``folder`` (non-DICOM files are ignored).

    Args:
        folder: directory holding the slice files.
        series_uid: which series to read when the folder holds several (otherwise an ``InputError``).
        require_square_pixels: raise when PixelSpacing differs between rows and columns (the 2D projectors
            assume square pixels).
        require_axial: raise unless the slice normal is within ``AXIAL_TOLERANCE_DEG`` of the patient z axis
            (CT volume jobs; sagittal, coronal and oblique series read fine without it).

    Raises:
        InputError: naming the file and field for mixed series, missing slices or inconsistent spacing,
            missing pixel data / rescale / geometry tags, undecodable compressed data, truncated files, NaN/Inf,
            and (on request) non-square pixels or a non-axial orientation.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a directory")
    headers = _read_headers(folder)
    if not headers:
        raise InputError(folder, "no DICOM files found")
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path, ds in headers:
        groups.setdefault(str(_require(ds, path, "SeriesInstanceUID")), []).append((path, ds))
    if series_uid is None:
        if len(groups) > 1:
            listed = ", ".join(f"{uid} ({len(v)} files)" for uid, v in groups.items())
            raise InputError(folder, f"mixed series: {len(groups)} series found ({listed}); pass series_uid",
                             "SeriesInstanceUID")
        series_uid = next(iter(groups))
    if series_uid not in groups:
        raise InputError(folder, f"series {series_uid} not found", "SeriesInstanceUID")
    slices = groups[series_uid]

    first_path, first = slices[0]
    orient = np.asarray([float(v) for v in _require(first, first_path, "ImageOrientationPatient")], dtype=np.float64)
    spacing_rc = [float(v) for v in _require(first, first_path, "PixelSpacing")]
    shape = (int(_require(first, first_path, "Rows")), int(_require(first, first_path, "Columns")))
    if orient.shape != (6,) or len(spacing_rc) != 2:
        raise InputError(first_path, "ImageOrientationPatient needs 6 values and PixelSpacing 2",
                         "ImageOrientationPatient")
    if require_square_pixels and not np.isclose(spacing_rc[0], spacing_rc[1], rtol=1e-4):
        raise InputError(first_path, f"non-square pixels {spacing_rc} mm are not supported here", "PixelSpacing")
    normal = np.cross(orient[:3], orient[3:])
    if require_axial:
        _check_axial(normal, first_path)
    positions, entries = [], []
    for path, ds in slices:
        if not np.allclose([float(v) for v in _require(ds, path, "ImageOrientationPatient")], orient, atol=1e-4):
            raise InputError(path, "orientation differs from the rest of the series", "ImageOrientationPatient")
        if not np.allclose([float(v) for v in _require(ds, path, "PixelSpacing")], spacing_rc, rtol=1e-4):
            raise InputError(path, "pixel spacing differs from the rest of the series", "PixelSpacing")
        if (int(_require(ds, path, "Rows")), int(_require(ds, path, "Columns"))) != shape:
            raise InputError(path, "image size differs from the rest of the series", "Rows")
        pos = np.asarray([float(v) for v in _require(ds, path, "ImagePositionPatient")], dtype=np.float64)
        if pos.shape != (3,) or not np.isfinite(pos).all():
            raise InputError(path, f"expected three finite coordinates, got {pos.size} values",
                             "ImagePositionPatient")
        slope = float(_require(ds, path, "RescaleSlope"))
        if not np.isfinite(slope) or slope == 0:
            raise InputError(path, f"RescaleSlope = {slope:g} maps every pixel to one value", "RescaleSlope")
        intercept = float(_require(ds, path, "RescaleIntercept"))
        if not np.isfinite(intercept):
            raise InputError(path, f"RescaleIntercept = {intercept:g} is not finite", "RescaleIntercept")
        positions.append(pos)
        entries.append((float(pos @ normal), path, ds, slope, intercept))
    order = sorted(range(len(entries)), key=lambda i: entries[i][0])
    entries = [entries[i] for i in order]
    positions_arr = np.stack([positions[i] for i in order])
    dist = np.array([e[0] for e in entries])

    if len(entries) > 1:
        steps = np.diff(dist)
        if np.any(steps < 1e-3):
            dup = entries[int(np.argmin(steps)) + 1][1]
            raise InputError(dup, "two slices share one position (duplicate slice)", "ImagePositionPatient")
        dz = float(np.median(steps))
        if np.any(np.abs(steps - dz) > _SPACING_RTOL * dz + 1e-3):
            k = int(np.argmax(np.abs(steps - dz)))
            raise InputError(entries[k + 1][1], f"missing slices or inconsistent spacing: step {steps[k]:.3f} mm "
                             f"next to a median step of {dz:.3f} mm", "ImagePositionPatient")
    else:
        dz = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)

    hu = np.empty((len(entries), *shape), dtype=np.float32)
    for k, (_, path, _, slope, intercept) in enumerate(entries):
        arr = _pixels(path)
        if arr.shape != shape:
            raise InputError(path, f"pixel array {arr.shape} does not match Rows/Columns {shape}", "PixelData")
        values = arr.astype(np.float64) * slope + intercept
        if not np.isfinite(values).all():
            raise InputError(path, "pixel data contain NaN or Inf", "PixelData")
        hu[k] = values

    dy, dx = spacing_rc
    affine = np.eye(4)
    affine[:3, 0] = orient[:3] * dx
    affine[:3, 1] = orient[3:] * dy
    affine[:3, 2] = normal * dz
    affine[:3, 3] = positions_arr[0]
    return DicomSeries(hu=hu, spacing=(dz, dy, dx), affine=affine, orientation=orient, positions=positions_arr,
                       series_uid=series_uid, files=[e[1] for e in entries], headers=[e[2] for e in entries])


def _encode(hu: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 stored values with ``hu ~ stored * slope + intercept``."""
    lo, hi = float(hu.min()), float(hu.max())
    if lo >= -32768 and hi <= 32767:
        return np.rint(hu).astype(np.int16), 1.0, 0.0
    intercept = 0.5 * (lo + hi)
    slope = (hi - lo) / 65000.0
    return np.rint((hu - intercept) / slope).astype(np.int16), slope, intercept


def write_dicom_series(
    folder: str | Path,
    hu: np.ndarray,
    source: DicomSeries | None = None,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    series_description: str = "medrecon reconstruction",
    series_number: int = 9001,
) -> list[Path]:
    """Write a volume ``(D, H, W)`` (or one slice ``(H, W)``) of HU as a new CT series in a new ``folder``.

    Args:
        folder: output directory; must not exist or be empty.
        hu: HU values (finite).
        source: series whose geometry (positions, orientation, spacing) and patient/study tags are copied; its
            shape must match ``hu``.
        spacing: ``(dz, dy, dx)`` in mm when there is no source (required then).
        origin: ImagePositionPatient of the first slice in mm (no source).
        orientation: ImageOrientationPatient (no source).
        series_description: SeriesDescription of the new series.
        series_number: SeriesNumber of the new series.

    Returns:
        The written files, in slice order.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    vol = np.asarray(hu, dtype=np.float64)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3:
        raise InputError(folder, f"expected a (D, H, W) volume, got shape {vol.shape}", "hu")
    if not np.isfinite(vol).all():
        raise InputError(folder, f"refusing to write {int((~np.isfinite(vol)).sum())} NaN/Inf voxels", "hu")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(folder, "output folder exists and is not empty")
    depth = vol.shape[0]
    if source is not None:
        if source.hu.shape != vol.shape:
            raise InputError(folder, f"volume shape {vol.shape} differs from the source series {source.hu.shape}",
                             "hu")
        positions = source.positions
        orient = source.orientation
        dz, dy, dx = source.spacing
        templates = source.headers
    else:
        if spacing is None:
            raise InputError(folder, "spacing (dz, dy, dx) is needed when there is no source series", "spacing")
        dz, dy, dx = (float(v) for v in spacing)
        orient = np.asarray(orientation, dtype=np.float64)
        normal = np.cross(orient[:3], orient[3:])
        positions = np.asarray(origin, dtype=np.float64)[None] + np.arange(depth)[:, None] * dz * normal[None]
        templates = [None] * depth

    series_uid = generate_uid()
    shared = {"StudyInstanceUID": generate_uid(), "FrameOfReferenceUID": generate_uid(), "PatientName": "Anonymous",
              "PatientID": "medrecon"}
    stored, slope, intercept = _encode(vol)
    parent = ensure_writable_dir(folder.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    try:
        names = []
        for k in range(depth):
            sop_uid = generate_uid()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds = Dataset()
            ds.file_meta = meta
            template = templates[k]
            for tag in _COPIED_TAGS:
                if template is not None and tag in template:
                    setattr(ds, tag, template.get(tag))
                elif tag in shared:
                    setattr(ds, tag, shared[tag])
            if any(not str(ds.get(tag, "")).isascii() for tag in ("PatientName", "PatientID", "StudyDescription")):
                ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names outside ASCII stay readable
            ds.SOPClassUID = CT_IMAGE_STORAGE
            ds.SOPInstanceUID = sop_uid
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.SeriesDescription = series_description
            ds.Modality = "CT"
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in orient]
            ds.PixelSpacing = [f"{dy:.6f}", f"{dx:.6f}"]
            ds.SliceThickness = f"{dz:.6f}"
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows, ds.Columns = vol.shape[1], vol.shape[2]
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.RescaleSlope = f"{slope:.8g}"
            ds.RescaleIntercept = f"{intercept:.8g}"
            ds.RescaleType = "HU"
            ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2").tobytes()
            name = tmp / f"slice_{k + 1:04d}.dcm"
            pydicom.dcmwrite(name, ds, enforce_file_format=True)
            names.append(folder / name.name)
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
