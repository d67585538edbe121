"""The validation split: images on which defaults are chosen, apart from the images the benchmarks report.

* MRI: MNI152 1 mm template axial slices ``MRI_VALIDATION_Z`` — inside the band that training excludes, outside
  the held-out band that ``medrecon bench quality`` reports (``MRI_HELDOUT_Z``); preprocessed like training.
* CT: a real head CT, slices ``CT_VALIDATION_SLICES`` of the InVesalius "Cranium" example (Debian
  ``invesalius-examples``; its slices 54-107 are kept for independent evaluation and never read here), HU
  windowed to [0, 1] like the CT prior's training data and resized to the prior's grid.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["CRANIUM_PATH", "CT_VALIDATION_SLICES", "MRI_VALIDATION_Z", "ct_validation_slices",
           "mri_validation_slices"]

MRI_VALIDATION_Z = (95, 97, 99, 112, 114, 116)
CT_VALIDATION_SLICES = (8, 17, 26, 35, 44, 53)
CRANIUM_PATH = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def mri_validation_slices() -> np.ndarray:
    """``(6, 128, 128)`` float32 magnitudes (volume 99.5th percentile = 1)."""
    from ..training.datasets import MRI_EXCLUDED_Z_1MM, _volume_scale, mni152_volume, preprocess_axial_slice

    lo, hi = MRI_EXCLUDED_Z_1MM
    assert all(lo <= z < hi for z in MRI_VALIDATION_Z)
    vol, _ = mni152_volume(1)
    scale = _volume_scale(vol)
    return np.stack([preprocess_axial_slice(vol[:, :, z], scale) for z in MRI_VALIDATION_Z])


def ct_validation_slices(size: int = 128, path: str | Path = CRANIUM_PATH,
                         slices: tuple[int, ...] = CT_VALIDATION_SLICES) -> np.ndarray:
    """``(len(slices), size, size)`` float32 in [0, 1] (HU window [-1000, 1000]) of Cranium slices < 54."""
    from skimage.transform import resize

    from ..io.invesalius import read_inv3
    from ..training.datasets import hu_to_unit

    if not Path(path).exists():
        raise InputError(path, "the CT validation volume is missing (apt-get install invesalius-examples)")
    vol = read_inv3(path)
    if max(slices) >= 54:
        raise ValueError("slices 54-107 of the Cranium CT are reserved for independent evaluation")
    planes = [hu_to_unit(vol.data[z].astype(np.float32)) for z in slices]
    return np.stack([resize(p, (size, size), order=1, anti_aliasing=True, preserve_range=True)
                     for p in planes]).astype(np.float32)
