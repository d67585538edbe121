"""NIfTI volumes with nibabel (imported inside functions): float HU data with its affine, atomic writes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_path

__all__ = ["NiftiVolume", "read_nifti", "write_nifti"]


@dataclass
class NiftiVolume:
    """Voxel data as stored (nibabel's ``(i, j, k)`` order, float32) and the voxel-to-RAS affine (4x4, mm)."""

    data: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along ``i, j, k``: the column norms of the affine."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def read_nifti(path: str | Path) -> NiftiVolume:
    """Read a ``.nii`` / ``.nii.gz`` file (scaling by ``scl_slope/scl_inter`` applied); 2D-4D data, finite values."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - readers raise many types for corrupt files  # nibabel raises several types for truncated or foreign files
        raise InputError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from None
    if not 2 <= data.ndim <= 4:
        raise InputError(path, f"expected 2-4 dimensions, got shape {data.shape}", "dim")
    if not np.isfinite(data).all():
        raise InputError(path, f"{int((~np.isfinite(data)).sum())} voxels are NaN or Inf", "data")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise InputError(path, "affine has NaN or Inf entries", "affine")
    return NiftiVolume(data, affine)


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write float32 ``data`` with ``affine`` (4x4, voxel to RAS mm) to ``path`` atomically; returns ``path``."""
    import nibabel as nib

    path = Path(path)
    arr = np.asarray(data, dtype=np.float32)
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise InputError(path, f"affine must be a finite 4x4 matrix, got shape {aff.shape}", "affine")
    if not 2 <= arr.ndim <= 4:
        raise InputError(path, f"expected 2-4 dimensions, got shape {arr.shape}", "data")
    if not np.isfinite(arr).all():
        raise InputError(path, f"refusing to write {int((~np.isfinite(arr)).sum())} NaN/Inf voxels", "data")
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(path, "file name must end with .nii or .nii.gz")
    img = nib.Nifti1Image(arr, aff)
    img.header.set_xyzt_units("mm")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
