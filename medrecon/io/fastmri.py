"""fastMRI HDF5 files: read slice by slice (the volume is never loaded whole) and write in the same schema.

Schema (``fastmri/data/README.md``): dataset ``kspace`` ``(slices, coils, H, W)`` complex (multi-coil) or
``(slices, H, W)`` (single-coil), at the native grid (knee: 640x368, the readout ``H`` oversampled x2); optional
``reconstruction_rss`` / ``reconstruction_esc`` ``(slices, h, w)`` float centre-cropped magnitudes; optional ``mask``
``(W,)`` in test/challenge files; dataset ``ismrmrd_header`` (XML bytes) whose ``encoding/reconSpace/matrixSize``
``(x, y)`` gives the crop ``(h, w) = (x, y)`` (knee: 320x320) and whose ``encodingLimits/kspace_encoding_step_1``
centre and maximum give the acquired phase-encode columns (``reconSpace/fieldOfView_mm``, when present, the pixel
spacing); attributes ``acquisition``, ``max`` / ``norm`` of the reconstruction. Single-coil k-space is returned
with one coil axis, ``(1, H, W)``, so every slice plugs into :func:`operators.mri.multicoil_mri`.

fastMRI's image convention (:func:`rss_reference`): centred orthonormal inverse FFT per coil at the full k-space
grid, centre crop to the recon size, root sum of squares over coils. Reconstructions are made at the full grid and
cropped the same way.

Only ``kspace`` is required. Without a header the recon size is the stored reconstruction's ``(h, w)``, else the
k-space grid (no crop); ``acquisition``, ``max`` and ``norm`` are read when present (metrics then take the data
range from the reference volume, as fastMRI's ``evaluate.py`` does without ``maxval``).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..files import atomic_path

__all__ = [
    "RECONSTRUCTION_KEYS",
    "FastMRIInfo",
    "FastMRISlice",
    "center_crop",
    "ismrmrd_header",
    "read_info",
    "read_slice",
    "rss_reference",
    "write_fastmri",
]

RECONSTRUCTION_KEYS = ("reconstruction_rss", "reconstruction_esc")
_NS = "{http://www.ismrm.org/ISMRMRD}"


@dataclass(frozen=True)
class FastMRIInfo:
    """What a file holds, read from its metadata only.

    Attributes:
        path: the file.
        multicoil: ``kspace`` is ``(slices, coils, H, W)`` (else ``(slices, H, W)``).
        num_slices, coils: counts (``coils == 1`` for single-coil files).
        kspace_shape: ``(H, W)`` of one coil's k-space.
        recon_size: ``(h, w)`` centre-crop size from the header's ``reconSpace`` (without a header: the stored
            reconstruction's size, else ``kspace_shape``).
        encoded_size: ``(x, y, z)`` of ``encodedSpace`` (without a header: ``(H, W, 1)``).
        reconstructions: names of the stored reconstruction datasets.
        has_mask: a ``mask`` dataset is stored (test/challenge files).
        attrs: the file's attributes (``acquisition``, ``max``, ``norm``, ...), as Python values.
        padding: fastMRI's ``(padding_left, padding_right)``: columns ``[left, right)`` were acquired, from the
            header's ``kspace_encoding_step_1`` limits (``None`` without them).
        has_header: an ``ismrmrd_header`` is stored.
        pixel_spacing: ``(row, column)`` spacing of the recon grid in mm, from the header's
            ``reconSpace/fieldOfView_mm`` (``None`` without it).
    """

    path: Path
    multicoil: bool
    num_slices: int
    coils: int
    kspace_shape: tuple[int, int]
    recon_size: tuple[int, int]
    encoded_size: tuple[int, int, int]
    reconstructions: tuple[str, ...]
    has_mask: bool
    attrs: dict = field(default_factory=dict)
    padding: tuple[int, int] | None = None
    has_header: bool = True
    pixel_spacing: tuple[float, float] | None = None


@dataclass(frozen=True)
class FastMRISlice:
    """One slice: ``kspace`` ``(C, H, W)`` complex64, ``target`` ``(h, w)`` float32 or None, ``mask`` ``(W,)`` bool
    or None, and the file's ``info``."""

    kspace: torch.Tensor
    target: torch.Tensor | None
    mask: torch.Tensor | None
    info: FastMRIInfo


def ismrmrd_header(
    encoded_size: tuple[int, int, int],
    recon_size: tuple[int, int],
    limits: tuple[int, int] | None = None,
    fov_mm: tuple[float, float] | None = None,
) -> bytes:
    """Minimal ISMRMRD XML header with the fields fastMRI reads: encoded and recon matrix sizes and the phase
    encoding limits ``limits = (center, maximum)`` of ``kspace_encoding_step_1`` (default: all ``y`` columns,
    centre ``y // 2``); with ``fov_mm`` ``(x, y)`` the recon field of view in mm (``fieldOfView_mm`` of both
    spaces, the encoded one scaled by matrix size so both have the same pixel spacing)."""
    ex, ey, ez = encoded_size
    rx, ry = recon_size
    center, maximum = (ey // 2, ey - 1) if limits is None else limits
    enc_fov = rec_fov = ""
    if fov_mm is not None:
        fx, fy = (float(v) for v in fov_mm)
        rec_fov = f"<fieldOfView_mm><x>{fx:g}</x><y>{fy:g}</y><z>1</z></fieldOfView_mm>"
        enc_fov = f"<fieldOfView_mm><x>{fx * ex / rx:g}</x><y>{fy * ey / ry:g}</y><z>1</z></fieldOfView_mm>"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        f"<encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>{ez}</z></matrixSize>{enc_fov}</encodedSpace>"
        f"<reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>{rec_fov}</reconSpace>"
        "<encodingLimits><kspace_encoding_step_1>"
        f"<minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center>"
        "</kspace_encoding_step_1></encodingLimits>"
        "</encoding></ismrmrdHeader>"
    ).encode()


def _parse_header(
    path: Path, raw: object
) -> tuple[tuple[int, int, int], tuple[int, int], tuple[int, int] | None, tuple[float, float] | None]:
    """``(encoded (x, y, z), recon (x, y), padding (left, right) or None, recon pixel spacing (x, y) mm or None)``;
    the first three as fastMRI's ``mri_data`` reads them, the spacing from ``reconSpace/fieldOfView_mm``.

    Tags are matched by local name, so headers with or without the ISMRMRD namespace both read."""
    try:
        text = raw.decode() if isinstance(raw, (bytes, np.bytes_)) else str(raw)
        root = ET.fromstring(text)
        ns = _NS if root.tag.startswith(_NS) else ""

        def find(*names: str):
            return root.find("/".join(f"{ns}{n}" for n in names))

        def size(space: str) -> list[int]:
            node = find("encoding", space, "matrixSize")
            if node is None:
                raise ValueError(f"no encoding/{space}/matrixSize")
            return [int(node.find(f"{ns}{axis}").text) for axis in ("x", "y", "z")]  # type: ignore[union-attr]

        enc, rec = size("encodedSpace"), size("reconSpace")
        limits = find("encoding", "encodingLimits", "kspace_encoding_step_1")
        padding = None
        if limits is not None and limits.find(f"{ns}center") is not None and limits.find(f"{ns}maximum") is not None:
            left = enc[1] // 2 - int(limits.find(f"{ns}center").text)  # type: ignore[union-attr, arg-type]
            padding = (left, left + int(limits.find(f"{ns}maximum").text) + 1)  # type: ignore[union-attr, arg-type]
        fov = find("encoding", "reconSpace", "fieldOfView_mm")
        spacing = None
        if fov is not None:
            fx, fy = (float(fov.find(f"{ns}{a}").text) for a in ("x", "y"))  # type: ignore[union-attr, arg-type]
            if not (fx > 0 and fy > 0):
                raise ValueError(f"reconSpace fieldOfView_mm {fx}x{fy} is not positive")
            spacing = (fx / rec[0], fy / rec[1])
    except (ET.ParseError, ValueError, AttributeError, TypeError) as err:
        raise InputError(path, f"cannot read the ISMRMRD header ({err})", "ismrmrd_header") from None
    if min(rec[:2]) < 1:
        raise InputError(path, f"reconSpace matrixSize {rec[0]}x{rec[1]} is not a positive size", "ismrmrd_header")
    return (enc[0], enc[1], enc[2]), (rec[0], rec[1]), padding, spacing


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 file (truncated or wrong format: {err})") from None


def _attr(value: object) -> object:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _info(path: Path, hf) -> FastMRIInfo:
    if "kspace" not in hf:
        raise InputError(path, "missing dataset", "kspace")
    ksp = hf["kspace"]
    if ksp.ndim not in (3, 4):
        raise InputError(path, f"expected (slices, coils, H, W) or (slices, H, W), got {ksp.ndim} dimensions",
                         "kspace")
    if ksp.dtype.kind != "c":
        raise InputError(path, f"expected complex k-space, got dtype {ksp.dtype}", "kspace")
    attrs = {k: _attr(v) for k, v in hf.attrs.items()}
    reconstructions = tuple(k for k in RECONSTRUCTION_KEYS if k in hf)
    for key in reconstructions:
        rec = hf[key]
        if rec.ndim != 3:
            raise InputError(path, f"expected (slices, h, w), got {rec.ndim} dimensions", key)
        if rec.shape[0] != ksp.shape[0]:
            raise InputError(path, f"{rec.shape[0]} slices but kspace has {ksp.shape[0]}", key)
    grid = (int(ksp.shape[-2]), int(ksp.shape[-1]))
    has_header = "ismrmrd_header" in hf
    if has_header:
        encoded, recon, padding, spacing = _parse_header(path, hf["ismrmrd_header"][()])
        for key in reconstructions:
            if tuple(int(n) for n in hf[key].shape[-2:]) != tuple(recon):
                raise InputError(path, f"{key} is {tuple(hf[key].shape[-2:])} but the header's reconSpace is "
                                 f"{tuple(recon)}", key)
    else:
        encoded, padding, spacing = (*grid, 1), None, None
        recon = tuple(int(n) for n in hf[reconstructions[0]].shape[-2:]) if reconstructions else grid
    has_mask = "mask" in hf
    if has_mask and tuple(hf["mask"].shape) != (ksp.shape[-1],):
        raise InputError(path, f"mask shape {tuple(hf['mask'].shape)} does not match k-space width {ksp.shape[-1]}",
                         "mask")
    multicoil = ksp.ndim == 4
    return FastMRIInfo(
        path=path, multicoil=multicoil, num_slices=int(ksp.shape[0]), coils=int(ksp.shape[1]) if multicoil else 1,
        kspace_shape=grid, recon_size=recon, encoded_size=encoded,  # type: ignore[arg-type]
        reconstructions=reconstructions, has_mask=has_mask, attrs=attrs, padding=padding, has_header=has_header,
        pixel_spacing=spacing,
    )


def read_info(path: str | Path) -> FastMRIInfo:
    """Validate a fastMRI file's structure and return its metadata (no k-space is read)."""
    path = Path(path)
    with _open(path) as hf:
        return _info(path, hf)


def _finite(path: Path, array: np.ndarray, where: str) -> None:
    if not np.isfinite(array).all():
        raise InputError(path, "contains NaN or Inf values", where)


def read_slice(
    path: str | Path, index: int, reconstruction: str | None = None, expected_coils: int | None = None
) -> FastMRISlice:
    """Read slice ``index`` (k-space, target, mask) without loading the rest of the volume.

    Args:
        path: fastMRI HDF5 file.
        index: slice number, ``0 <= index < num_slices``.
        reconstruction: which target to read (default ``reconstruction_rss`` if stored, else ``_esc``, else none);
            ``"rss"`` computes it from the slice's k-space with fastMRI's convention (:func:`rss_reference`), for
            fully sampled files that store none.
        expected_coils: raise ``InputError`` if the file's coil count differs (e.g. from precomputed coil maps).
    """
    path = Path(path)
    with _open(path) as hf:
        info = _info(path, hf)
        if not 0 <= index < info.num_slices:
            raise InputError(path, f"slice {index} out of range [0, {info.num_slices})", "kspace")
        if expected_coils is not None and expected_coils != info.coils:
            raise InputError(path, f"{info.coils} coils but {expected_coils} expected", "kspace")
        try:
            ksp = np.asarray(hf["kspace"][index])
        except OSError as err:
            raise InputError(path, f"cannot read slice {index} (truncated file? {err})", "kspace") from None
        _finite(path, ksp, f"kspace[{index}]")
        if not info.multicoil:
            ksp = ksp[None]
        key = reconstruction or (info.reconstructions[0] if info.reconstructions else None)
        target = None
        if key == "rss":
            target = rss_reference(torch.from_numpy(ksp.astype(np.complex64)), info.recon_size)
        elif key is not None:
            if key not in hf:
                raise InputError(path, "missing dataset", key)
            tgt = np.asarray(hf[key][index])
            _finite(path, tgt, f"{key}[{index}]")
            target = torch.from_numpy(tgt.astype(np.float32))
        mask = torch.from_numpy(np.asarray(hf["mask"][()]) != 0) if info.has_mask else None
    return FastMRISlice(torch.from_numpy(ksp.astype(np.complex64)), target, mask, info)


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre crop of the last two dimensions to ``size`` (fastMRI's rule, rows ``(H - h) // 2 + [0, h)`` and
    columns ``(W - w) // 2 + [0, w)``; a size larger than the image keeps it)."""
    h, w = x.shape[-2:]
    ch, cw = min(size[0], h), min(size[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def rss_reference(kspace: torch.Tensor, recon_size: tuple[int, int]) -> torch.Tensor:
    """fastMRI's reference image of multi-coil k-space ``(*batch, C, H, W)``: centred orthonormal inverse FFT per
    coil at the full grid, centre crop to ``recon_size`` ``(h, w)``, root sum of squares over coils;
    ``(*batch, h, w)`` float32 (e.g. 640x368 knee k-space -> 320x320)."""
    from operators.mri import ifft2c

    images = center_crop(ifft2c(kspace.to(torch.complex64)), recon_size)
    return images.abs().square().sum(dim=-3).sqrt()


def write_fastmri(
    path: str | Path,
    kspace: torch.Tensor | np.ndarray,
    reconstruction: torch.Tensor | np.ndarray | None = None,
    reconstruction_key: str = "reconstruction_rss",
    acquisition: str = "AXT2",
    recon_size: tuple[int, int] | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    max_value: float | None = None,
    norm: float | None = None,
    compress: bool = False,
    limits: tuple[int, int] | None = None,
    fov_mm: tuple[float, float] | None = None,
) -> Path:
    """Write a fastMRI-schema file atomically (a killed writer leaves no partial file).

    Args:
        path: destination ``.h5``.
        kspace: ``(slices, coils, H, W)`` (multi-coil) or ``(slices, H, W)`` (single-coil), complex.
        reconstruction: ``(slices, h, w)`` real target, stored under ``reconstruction_key``.
        acquisition: the ``acquisition`` attribute (e.g. ``AXT2``, ``CORPD_FBK``).
        recon_size: header ``reconSpace`` ``(h, w)``; defaults to the reconstruction's or k-space's size.
        mask: ``(W,)`` sampling mask for test-style files.
        max_value, norm: attributes ``max`` and ``norm``; default to the reconstruction's max and L2 norm.
        compress: store datasets gzip-compressed (level 9, byte shuffle, one chunk per slice); readers that use
            h5py (fastMRI's included) decompress transparently.
        limits: header ``kspace_encoding_step_1`` ``(center, maximum)`` (default: all ``W`` columns acquired).
        fov_mm: header ``reconSpace/fieldOfView_mm`` ``(x, y)`` (pixel spacing = FOV / recon size).
    """
    import h5py

    path = Path(path)
    ksp = np.asarray(torch.as_tensor(kspace).cpu().numpy() if isinstance(kspace, torch.Tensor) else kspace)
    if ksp.ndim not in (3, 4) or not np.iscomplexobj(ksp):
        raise InputError(path, f"k-space must be complex (slices, [coils,] H, W), got {ksp.dtype} {ksp.shape}",
                         "kspace")
    _finite(path, ksp, "kspace")
    height, width = ksp.shape[-2:]
    rec = None
    if reconstruction is not None:
        rec = np.asarray(reconstruction.cpu().numpy() if isinstance(reconstruction, torch.Tensor) else reconstruction)
        if rec.ndim != 3 or rec.shape[0] != ksp.shape[0] or np.iscomplexobj(rec):
            raise InputError(path, f"reconstruction must be real (slices={ksp.shape[0]}, h, w), got {rec.shape}",
                             reconstruction_key)
        if reconstruction_key not in RECONSTRUCTION_KEYS:
            raise InputError(path, f"unknown reconstruction name (use one of {RECONSTRUCTION_KEYS})",
                             reconstruction_key)
        _finite(path, rec, reconstruction_key)
    size = recon_size or (rec.shape[-2:] if rec is not None else (height, width))

    def options(array: np.ndarray) -> dict:
        if not compress:
            return {}
        return {"compression": "gzip", "compression_opts": 9, "shuffle": True, "chunks": (1, *array.shape[1:])}

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("kspace", data=ksp, **options(ksp))
        header = ismrmrd_header((height, width, 1), tuple(size), limits, fov_mm)
        hf.create_dataset("ismrmrd_header", data=np.bytes_(header))
        hf.attrs["acquisition"] = acquisition
        if rec is not None:
            hf.create_dataset(reconstruction_key, data=rec.astype(np.float32), **options(rec))
            hf.attrs["max"] = float(rec.max()) if max_value is None else float(max_value)
            hf.attrs["norm"] = float(np.linalg.norm(rec)) if norm is None else float(norm)
        if mask is not None:
            m = np.asarray(mask.cpu().numpy() if isinstance(mask, torch.Tensor) else mask)
            if m.shape != (width,):
                raise InputError(path, f"mask must have shape ({width},), got {m.shape}", "mask")
            hf.create_dataset("mask", data=m.astype(np.float32))
    return path
