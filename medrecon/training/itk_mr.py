"""Real and simulated MR images of the ITK examples (Debian package ``insighttoolkit5-examples``, Apache-2.0, see
``/usr/share/doc/insighttoolkit5-examples/copyright``), read from ``ITK_DATA`` at their own pixel sizes and
zero-padded (never resized) into one square frame, nothing downloaded. A validation set
(``bench mri_prior --sets itk``) and, with ``python -m medrecon.training.mri_synth --real-itk K``, augmented
training slices.

* ``KmeansTest_T1UCharRaw.nii.gz``: a scanner T1 volume, 128x128x62 at 2x2x3 mm; its 62 coronal 128x128 slices
  at 2 mm (reoriented to superior up, patient's right on the right), those with at least
  ``datasets.MIN_HEAD_FRACTION`` of the plane inside the head (56: slices 1-56);
* ``BrainProtonDensity3Slices.mha`` (+ ``.raw``): three axial 181x217 proton-density slices at 1 mm (BrainWeb
  simulation);
* ``itkBrainSliceComplex.mha``: one axial 181x217 complex slice at 1 mm (its real part is
  ``BrainProtonDensitySlice.png``, its imaginary part ``BrainT1Slice.png``): its magnitude;
* ``BrainT1Slice.png``, ``BrainProtonDensitySlice.png``: axial 181x217 BrainWeb T1 and PD slices;
  ``BrainMidSagittalSlice.png``: a 217x180 mid-sagittal T1 slice; ``FatMRISlice.png``: a 256x256 axial slice of
  the abdomen (fat bright). PNG files state no pixel size (``pixel_mm`` None).

Magnitudes (float32), each volume divided by its 99.5th percentile (the MRI priors' ``normalisation``), centred
in a zero ``size x size`` frame by ``datasets.preprocess_axial_slice(..., resample=False)``; MetaImage and PNG
slices as ITK displays them (first row at the top), anterior or superior up.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["ITK_DATA", "LICENSE", "SOURCES", "ItkSource", "itk_mr_files", "itk_mr_slices", "read_metaimage"]

ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
LICENSE = ("Apache-2.0 (ITK examples data, Debian package insighttoolkit5-examples, "
           "/usr/share/doc/insighttoolkit5-examples/copyright)")
FRAME = 256  # the largest slice, FatMRISlice.png, is 256x256


class ItkSource(NamedTuple):
    """One file of ``ITK_DATA``: its name, what it shows, the slices taken (last axis; None: every slice with at
    least ``MIN_HEAD_FRACTION`` of the plane in the head) and its in-plane pixel size (None: not stated)."""

    file: str
    kind: str
    slices: tuple[int, ...] | None
    pixel_mm: float | None


SOURCES = (
    ItkSource("KmeansTest_T1UCharRaw.nii.gz", "T1, coronal (scanner)", None, 2.0),
    ItkSource("BrainProtonDensity3Slices.mha", "PD, axial (BrainWeb simulation)", (0, 1, 2), 1.0),
    ItkSource("itkBrainSliceComplex.mha", "magnitude of PD + i T1, axial (BrainWeb simulation)", (0,), 1.0),
    ItkSource("BrainT1Slice.png", "T1, axial (BrainWeb simulation)", (0,), None),
    ItkSource("BrainProtonDensitySlice.png", "PD, axial (BrainWeb simulation)", (0,), None),
    ItkSource("BrainMidSagittalSlice.png", "T1, mid-sagittal", (0,), None),
    ItkSource("FatMRISlice.png", "axial abdomen, fat bright", (0,), None),
)

_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2", "MET_UINT": "u4",
          "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
_MAX_HEADER_LINES = 200


def _bool_field(path: Path, fields: dict[str, str], key: str) -> bool:
    value = fields[key].strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InputError(path, f"{key} = {fields[key]!r}: expected True or False", key)
    return value in ("true", "1")


def _numbers(path: Path, fields: dict[str, str], key: str, n: int, kind: type) -> list:
    try:
        values = [kind(v) for v in fields[key].split()]
    except ValueError:
        raise InputError(path, f"{key} = {fields[key]!r}: expected {n} numbers", key) from None
    if len(values) != n or any(v <= 0 for v in values):
        raise InputError(path, f"{key} = {fields[key]!r}: expected {n} positive numbers", key)
    return values


def _header_size(path: Path, fields: dict[str, str]) -> int:
    """Bytes to skip at the start of a separate data file (-1: the data are its last bytes)."""
    try:
        size = int(fields.get("HeaderSize", "0"))
    except ValueError:
        size = -2
    if size < -1:
        raise InputError(path, f"HeaderSize = {fields['HeaderSize']!r}: expected a byte count or -1", "HeaderSize")
    return size


def _metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The header's ``key -> value`` up to ``ElementDataFile`` (the last key) and the byte offset after it."""
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        for _ in range(_MAX_HEADER_LINES):
            line = f.readline()
            if not line:
                break
            key, sep, value = line.decode("latin-1").partition("=")
            if not sep:
                if line.strip():
                    raise InputError(path, f"malformed MetaImage header line {line[:40]!r}: expected 'Key = Value'")
                continue
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                return fields, f.tell()
    raise InputError(path, "missing ElementDataFile (not a MetaImage header?)", "ElementDataFile")


def _metaimage_data_path(path: Path, fields: dict[str, str]) -> Path | None:
    """The separate data file a header names (None: ``LOCAL``, the data follows the header)."""
    name = fields["ElementDataFile"]
    if name == "LOCAL":
        return None
    if not name or name == "LIST" or "%" in name or Path(name).name != name:
        raise InputError(path, f"ElementDataFile = {name!r}: expected LOCAL or one file name beside the header",
                         "ElementDataFile")
    data = path.parent / name
    if not data.is_file():
        raise InputError(path, f"ElementDataFile {name} not found beside the header", "ElementDataFile")
    return data


def read_metaimage(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A MetaImage (``.mha`` / ``.mhd``, uncompressed binary): ``(array, spacing)`` with the array indexed in
    ``DimSize`` order ``(x, y[, z])`` (x varies fastest in the file; numeric dtype as stored, complex64 or
    complex128 for ``ElementNumberOfChannels = 2``) and ``ElementSpacing`` in mm per axis (1 when absent).
    ``InputError`` naming the file and the field for anything missing, malformed or unsupported."""
    path = Path(path)
    fields, offset = _metaimage_header(path)
    for key in ("NDims", "DimSize", "ElementType"):
        if key not in fields:
            raise InputError(path, f"missing {key}", key)
    if "CompressedData" in fields and _bool_field(path, fields, "CompressedData"):
        raise InputError(path, "CompressedData = True: compressed MetaImage data is not supported", "CompressedData")
    if "BinaryData" in fields and not _bool_field(path, fields, "BinaryData"):
        raise InputError(path, "BinaryData = False: text MetaImage data is not supported", "BinaryData")
    ndims = _numbers(path, fields, "NDims", 1, int)[0]
    dims = _numbers(path, fields, "DimSize", ndims, int)
    spacing = (_numbers(path, fields, "ElementSpacing", ndims, float) if "ElementSpacing" in fields
               else [1.0] * ndims)
    if fields["ElementType"] not in _TYPES:
        raise InputError(path, f"ElementType = {fields['ElementType']!r}: expected one of {', '.join(_TYPES)}",
                         "ElementType")
    channels = _numbers(path, fields, "ElementNumberOfChannels", 1, int)[0] if "ElementNumberOfChannels" in fields \
        else 1
    if channels not in (1, 2):
        raise InputError(path, f"ElementNumberOfChannels = {channels}: expected 1 or 2 (complex)",
                         "ElementNumberOfChannels")
    msb = False
    for key in ("ElementByteOrderMSB", "BinaryDataByteOrderMSB"):
        if key in fields:
            msb = _bool_field(path, fields, key)
    dtype = np.dtype(_TYPES[fields["ElementType"]]).newbyteorder(">" if msb else "<")
    nbytes = int(np.prod(dims)) * channels * dtype.itemsize
    data_path = _metaimage_data_path(path, fields)
    if data_path is None:
        source, skip = path, offset
    else:
        source, skip = data_path, _header_size(path, fields)
        if skip == -1:  # the data are the file's last bytes
            skip = max(source.stat().st_size - nbytes, 0)
    raw = source.read_bytes()[skip:]
    if len(raw) != nbytes:
        what = "truncated data" if len(raw) < nbytes else "more data than the header states"
        raise InputError(path, f"{what}: {source.name} holds {len(raw)} bytes after the header, expected {nbytes} "
                               f"({'x'.join(map(str, dims))} x {channels} x {dtype.itemsize})", "ElementDataFile")
    arr = np.frombuffer(raw, dtype=dtype).reshape(tuple(dims[::-1]) + ((2,) if channels == 2 else ()))
    if channels == 2:  # (real, imaginary) pairs
        real = np.float64 if dtype.kind == "f" and dtype.itemsize == 8 else np.float32
        arr = np.ascontiguousarray(arr, dtype=real).view(np.complex128 if real is np.float64 else np.complex64)
        arr = arr[..., 0]
    else:
        arr = arr.astype(dtype.newbyteorder("="))
    return np.ascontiguousarray(arr.transpose()), tuple(spacing)


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """``(X, Y, Z)`` float64 magnitudes (first volume of a 4D series) with the in-plane axes in RAS order and
    direction (slices along the stored last axis, stored order) and their pixel sizes in mm."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.abs(np.asarray(img.dataobj)).astype(np.float64)
    if data.ndim == 4:
        data = data[..., 0]
    data = data.reshape(data.shape[:2] + (-1,))
    zooms = [float(z) for z in img.header.get_zooms()[:2]]
    ornt = nib.orientations.io_orientation(img.affine)
    for ax in (0, 1):
        if ornt[ax, 1] < 0:
            data = np.flip(data, ax)
    if ornt[0, 0] > ornt[1, 0]:
        data, zooms = data.transpose(1, 0, 2), zooms[::-1]
    return data, (zooms[0], zooms[1])


def _read_png(path: Path) -> np.ndarray:
    """A greyscale PNG as one ``(X, Y, 1)`` float64 plane (first row at the top once framed)."""
    from skimage.io import imread

    img = np.asarray(imread(path))
    if img.ndim == 3:
        if img.shape[-1] in (2, 4):  # drop alpha
            img = img[..., :-1]
        if not (img == img[..., :1]).all():
            raise InputError(path, f"a colour image ({img.shape[-1]} channels): expected greyscale MR")
        img = img[..., 0]
    if img.ndim != 2:
        raise InputError(path, f"expected one 2D image, got shape {img.shape}")
    return img[::-1].T.astype(np.float64)[..., None]


def _volume(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """``(X, Y, Z)`` float64 magnitudes, each plane ``[:, :, z]`` as ``preprocess_axial_slice`` expects it, and
    the in-plane pixel size (None: not stated)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    if name.endswith(".png"):
        return _read_png(path), None
    if name.endswith((".mha", ".mhd")):
        arr, spacing = read_metaimage(path)
        arr = np.abs(arr).astype(np.float64)
        if arr.ndim not in (2, 3):
            raise InputError(path, f"expected a 2D or 3D image, got {arr.ndim} dimensions", "NDims")
        arr = arr.reshape(arr.shape[:2] + (-1,))[:, ::-1]  # y grows downwards as displayed: flip it up
        return arr, (spacing[0], spacing[1])
    raise InputError(path, "unknown format: expected .nii(.gz), .mha/.mhd or .png")


def _source_path(data_dir: Path, source: ItkSource) -> Path:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no ITK example data at {data_dir}: apt-get install insighttoolkit5-examples")
    path = data_dir / source.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: apt-get install --reinstall insighttoolkit5-examples")
    return path


def itk_mr_files(data_dir: str | Path = ITK_DATA, sources: Sequence[ItkSource] = SOURCES) -> list[Path]:
    """Every file ``itk_mr_slices`` reads (MetaImage data files after their headers)."""
    files = []
    for source in sources:
        path = _source_path(Path(data_dir), source)
        files.append(path)
        if path.suffix in (".mha", ".mhd"):
            data = _metaimage_data_path(path, _metaimage_header(path)[0])
            files += [data] if data is not None else []
    return files


def itk_mr_slices(size: int = FRAME, data_dir: str | Path = ITK_DATA,
                  sources: Sequence[ItkSource] = SOURCES) -> tuple[np.ndarray, list[dict]]:
    """``(N, size, size)`` float32 magnitudes of the ``sources`` slices of ``data_dir``, each volume divided by
    its 99.5th percentile and each slice centred in a zero frame at its own pixel size, and one record per slice
    (file, kind, slice, pixel_mm). ``FileNotFoundError`` when the data are not installed; ``InputError`` for an
    unreadable file or a pixel size other than the source's; ``ValueError`` when a slice does not fit ``size``."""
    from .datasets import MIN_HEAD_FRACTION, _head_fraction, _volume_scale, preprocess_axial_slice

    images, records = [], []
    for source in sources:
        path = _source_path(Path(data_dir), source)
        vol, pixel = _volume(path)
        if source.pixel_mm is not None and (pixel is None or not np.allclose(pixel, source.pixel_mm, rtol=1e-3)):
            raise InputError(path, f"in-plane pixel size {pixel} mm, expected {source.pixel_mm} mm")
        if max(vol.shape[0], vol.shape[1]) > size:
            raise ValueError(f"{path}: a {vol.shape[0]}x{vol.shape[1]} slice does not fit a {size} grid")
        scale = _volume_scale(vol)
        if not scale > 0:
            raise InputError(path, "the image is empty (99.5th percentile 0)")
        slices = source.slices if source.slices is not None else tuple(
            z for z in range(vol.shape[2]) if _head_fraction(vol[:, :, z]) >= MIN_HEAD_FRACTION)
        for z in slices:
            if not 0 <= z < vol.shape[2]:
                raise InputError(path, f"has {vol.shape[2]} slices, no slice {z}")
            images.append(preprocess_axial_slice(vol[:, :, z], scale, size, resample=False))
            records.append({"file": source.file, "kind": source.kind, "slice": int(z), "pixel_mm": source.pixel_mm})
    if not images:
        raise FileNotFoundError(f"no ITK example slices selected from {data_dir}")
    return np.stack(images), records
