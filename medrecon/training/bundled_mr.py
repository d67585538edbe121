"""Real MR slices that installed packages bundle as test data (dipy, nibabel): scanner images at their own pixel
sizes, zero-padded (never resized) to one grid, nothing downloaded. A validation set of real anatomy and real
noise for choosing between priors; no shipped prior trains on it.

* dipy ``t1_coronal_slice.npy``: one 256x256 T1 coronal slice (pixel size not stated);
* dipy ``S0_10slices.nii.gz``: b=0 diffusion images, 128x128 at 2 mm, slices 2-7;
* dipy ``test_piesno.nii.gz``: diffusion-weighted images, 96x96 at 1 mm, slices 4-9;
* nibabel ``example4d.nii.gz``: EPI (fMRI), 128x96 at 2 mm, first volume, slices 8-15.

Each volume is scaled so its 99.5th percentile is 1 (the MRI priors' ``normalisation``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["SOURCES", "BundledSource", "bundled_mr_slices"]


class BundledSource(NamedTuple):
    """One bundled file: its package, path inside the package, the slices taken (last axis) and pixel size."""

    package: str
    path: str
    slices: tuple[int, ...]
    pixel_mm: float | None


SOURCES = (
    BundledSource("dipy", "data/files/t1_coronal_slice.npy", (0,), None),
    BundledSource("dipy", "data/files/S0_10slices.nii.gz", tuple(range(2, 8)), 2.0),
    BundledSource("dipy", "data/files/test_piesno.nii.gz", tuple(range(4, 10)), 1.0),
    BundledSource("nibabel", "tests/data/example4d.nii.gz", tuple(range(8, 16)), 2.0),
)


def _package_file(package: str, path: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    found = Path(spec.origin).parent / path
    return found if found.exists() else None


def _volume(file: Path) -> np.ndarray:
    """``(X, Y, Z)`` float64 magnitudes (the first volume of a 4D series; a 2D array becomes one slice)."""
    if file.suffix == ".npy":
        plane = np.load(file, allow_pickle=False)
        return np.asarray(plane, dtype=np.float64)[::-1].T[..., None]  # as an (X, Y) plane: displayed as stored
    import nibabel as nib

    data = np.asarray(nib.load(str(file)).get_fdata(), dtype=np.float64)
    return data[..., 0] if data.ndim == 4 else data


def bundled_mr_slices(size: int = 256) -> tuple[np.ndarray, list[dict]]:
    """``(N, size, size)`` float32 magnitudes of every ``SOURCES`` slice whose package is installed, each centred
    in a zero frame at its own pixel size, and one record per slice (package, file, slice, pixel mm).
    ``FileNotFoundError`` when no source is installed."""
    from .datasets import _volume_scale, preprocess_axial_slice

    images, records = [], []
    for source in SOURCES:
        file = _package_file(source.package, source.path)
        if file is None:
            continue
        vol = np.abs(_volume(file))
        scale = _volume_scale(vol)
        for z in source.slices:
            if max(vol.shape[0], vol.shape[1]) > size:
                raise ValueError(f"{file}: a {vol.shape[0]}x{vol.shape[1]} slice does not fit a {size} grid")
            images.append(preprocess_axial_slice(vol[:, :, z], scale, size, resample=False))
            records.append({"package": source.package, "file": source.path, "slice": z,
                            "pixel_mm": source.pixel_mm})
    if not images:
        raise FileNotFoundError("no bundled MR data found: install dipy or nibabel (the data extra)")
    return np.stack(images), records
