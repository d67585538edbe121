"""Read InVesalius project files (``.inv3``): a gzip-compressed tar of property lists and raw arrays.

Only the image volume is read: ``main.plist`` names ``matrix.dat`` with its dtype and shape ``(slices, rows,
cols)``, in Hounsfield units for CT, and the voxel spacing in mm. Property lists are parsed with ``plistlib``
(no code is executed, nothing is unpickled).

InVesalius stores each imported DICOM image with its rows reversed (bottom row first, VTK's y-up order:
``dcm2memmap`` writes ``image[::-1]``). The reader reverses them back, so row 0 is the DICOM image's top row as
every DICOM viewer shows it (anterior for an axial head CT of a supine patient); read as stored, a head CT
would lie upside down, the face at the bottom.
"""
from __future__ import annotations

import plistlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["InvesaliusVolume", "read_inv3"]


@dataclass
class InvesaliusVolume:
    """``data`` ``(slices, rows, cols)`` in DICOM row order (HU for CT), ``spacing`` (x, y, z) in mm, and
    ``modality``."""

    data: np.ndarray
    spacing: tuple[float, float, float]
    modality: str
    name: str


def _find(archive: tarfile.TarFile, name: str, path: Path) -> tarfile.TarInfo:
    """The member called ``name``: among those already seen, else the next ones, stopping at the first match.
    ``getmembers()`` would decompress the whole archive, the reserved slices of ``matrix.dat`` included."""
    def matches(info: tarfile.TarInfo) -> bool:
        return info.isfile() and Path(info.name).name == name

    for info in archive.members:
        if matches(info):
            return info
    while (info := archive.next()) is not None:
        if matches(info):
            return info
    raise InputError(path, f"the project has no {name}", field=name)


def read_inv3(path: str | Path, slices: tuple[int, ...] | None = None,
              stop: int | None = None) -> InvesaliusVolume:
    """The image volume of an InVesalius ``.inv3`` project, or only the axial ``slices`` given (in that order):
    then the bytes of no other slice are read, so parts of a volume kept for independent evaluation stay
    unread. ``stop``: slices at or above it are never read (an ``InputError`` if asked for; without ``slices``,
    slices ``0 .. stop - 1``). ``data`` is ``(len(slices) or slices_total, rows, cols)``, each plane's rows in
    DICOM order (the stored rows reversed, module docstring)."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:*") as archive:
            main_info = _find(archive, "main.plist", path)
            main = plistlib.loads(archive.extractfile(main_info).read())
            matrix = main.get("matrix")
            if not isinstance(matrix, dict) or not {"dtype", "filename", "shape"} <= set(matrix):
                raise InputError(path, "main.plist has no matrix description", field="matrix")
            shape = tuple(int(v) for v in matrix["shape"])
            dtype = np.dtype(str(matrix["dtype"]))
            info = _find(archive, Path(str(matrix["filename"])).name, path)
            plane = int(np.prod(shape[1:])) * dtype.itemsize
            if info.size != shape[0] * plane:
                raise InputError(path, f"matrix.dat holds {info.size} bytes, shape {shape} {dtype} needs "
                                 f"{shape[0] * plane}", field="matrix")
            end = shape[0] if stop is None else min(shape[0], stop)
            chosen = tuple(range(end)) if slices is None else tuple(int(z) for z in slices)
            reserved = [z for z in chosen if stop is not None and z >= stop]
            if reserved:
                raise InputError(path, f"slices {reserved} are reserved (only slices below {stop} may be read)",
                                 field="slices")
            bad = [z for z in chosen if not 0 <= z < shape[0]]
            if bad:
                raise InputError(path, f"slices {bad} out of range for {shape[0]} slices", field="slices")
            handle = archive.extractfile(info)
            planes = []
            for z in chosen:
                handle.seek(z * plane)
                planes.append(np.frombuffer(handle.read(plane), dtype=dtype).reshape(shape[1:])[::-1])
    except (OSError, tarfile.TarError, plistlib.InvalidFileException) as err:
        raise InputError(path, f"not a readable InVesalius project ({err})") from None
    data = np.stack(planes) if planes else np.zeros((0, *shape[1:]), dtype)
    spacing = tuple(float(v) for v in main.get("spacing", (1.0, 1.0, 1.0)))
    return InvesaliusVolume(data, spacing, str(main.get("modality", "")), str(main.get("name", "")))
