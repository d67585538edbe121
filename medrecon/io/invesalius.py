"""Read InVesalius project files (``.inv3``): a gzip-compressed tar of property lists and raw arrays.

Only the image volume is read: ``main.plist`` names ``matrix.dat`` with its dtype and shape ``(slices, rows,
cols)``, in Hounsfield units for CT, and the voxel spacing in mm. Property lists are parsed with ``plistlib``
(no code is executed, nothing is unpickled).
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
    """``data`` ``(slices, rows, cols)`` as stored (HU for CT), ``spacing`` (x, y, z) in mm, and ``modality``."""

    data: np.ndarray
    spacing: tuple[float, float, float]
    modality: str
    name: str


def _member(archive: tarfile.TarFile, name: str, path: Path) -> bytes:
    for info in archive.getmembers():
        if info.isfile() and Path(info.name).name == name:
            handle = archive.extractfile(info)
            if handle is not None:
                return handle.read()
    raise InputError(path, f"the project has no {name}", field=name)


def read_inv3(path: str | Path) -> InvesaliusVolume:
    """The image volume of an InVesalius ``.inv3`` project."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:*") as archive:
            main = plistlib.loads(_member(archive, "main.plist", path))
            matrix = main.get("matrix")
            if not isinstance(matrix, dict) or not {"dtype", "filename", "shape"} <= set(matrix):
                raise InputError(path, "main.plist has no matrix description", field="matrix")
            raw = _member(archive, Path(str(matrix["filename"])).name, path)
    except (OSError, tarfile.TarError, plistlib.InvalidFileException) as err:
        raise InputError(path, f"not a readable InVesalius project ({err})") from None
    shape = tuple(int(v) for v in matrix["shape"])
    dtype = np.dtype(str(matrix["dtype"]))
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise InputError(path, f"matrix.dat holds {len(raw)} bytes, shape {shape} {dtype} needs more", field="matrix")
    data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    spacing = tuple(float(v) for v in main.get("spacing", (1.0, 1.0, 1.0)))
    return InvesaliusVolume(data, spacing, str(main.get("modality", "")), str(main.get("name", "")))
