"""Data components over the toolkit's named image sets, for benchmarks and the choice of defaults.

``mri_slices`` simulates multi-coil k-space (birdcage coils, smooth random phase, complex Gaussian noise of a
stated std) from real-valued magnitude slices; ``ct_slices`` gives CT slices in attenuation units (the operator
simulates the sinograms). The sets:

* ``mni152_heldout``: the MNI152 band that the shipped MRI prior never saw (reported by ``bench quality``);
  ``mni152_validation``: slices of the same excluded band outside it (defaults are chosen on these);
  ``mni152_train``: eight evenly spaced 1 mm slices of the prior's own training set (where population
  acquisition masks are planned).
* ``cranium_test``, ``cranium_validation``: real head-CT slices 0-53 of the InVesalius "Cranium" example, split
  into two interleaved sets of six, 4 slices (6 mm) apart (slices 54-107 are kept for independent evaluation and
  never read); ``phantom_heldout``: random anatomy phantoms with seeds the CT prior never saw.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError, InputError
from .problem import Volume

__all__ = [
    "CRANIUM_PATH",
    "CRANIUM_TEST_SLICES",
    "CT_VALIDATION_SLICES",
    "MRI_VALIDATION_Z",
    "ct_slices",
    "ct_validation_slices",
    "load_image_set",
    "mri_slices",
    "mri_validation_slices",
]

CRANIUM_TEST_SLICES = (4, 13, 22, 31, 40, 49)
MRI_VALIDATION_Z = (95, 97, 99, 112, 114, 116)
CT_VALIDATION_SLICES = (8, 17, 26, 35, 44, 53)
CRANIUM_RESERVED_FROM = 54  # slices 54-107 are kept for independent evaluation and never read
CRANIUM_PATH = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def mri_validation_slices(size: int = 128, resample: bool = True) -> np.ndarray:
    """``(6, size, size)`` float32 magnitudes (volume 99.5th percentile = 1); ``resample=False`` keeps the
    template's 1 mm voxels, zero-padded to ``size`` (``preprocess_axial_slice``)."""
    from ..training.datasets import MRI_EXCLUDED_Z_1MM, _volume_scale, mni152_volume, preprocess_axial_slice

    lo, hi = MRI_EXCLUDED_Z_1MM
    assert all(lo <= z < hi for z in MRI_VALIDATION_Z)
    vol, _ = mni152_volume(1)
    scale = _volume_scale(vol)
    return np.stack([preprocess_axial_slice(vol[:, :, z], scale, size, resample) for z in MRI_VALIDATION_Z])


def ct_validation_slices(size: int = 128, path: str | Path = CRANIUM_PATH,
                         slices: tuple[int, ...] = CT_VALIDATION_SLICES) -> np.ndarray:
    """``(len(slices), size, size)`` float32 in [0, 1] (HU window [-1000, 1000]) of Cranium slices < 54."""
    from skimage.transform import resize

    from ..io.invesalius import read_inv3
    from ..training.datasets import hu_to_unit

    if max(slices) >= CRANIUM_RESERVED_FROM:
        raise ValueError("slices 54-107 of the Cranium CT are reserved for independent evaluation")
    if not Path(path).exists():
        raise InputError(path, "the CT validation volume is missing (apt-get install invesalius-examples)")
    vol = read_inv3(path, slices, stop=CRANIUM_RESERVED_FROM)  # reads only these slices' bytes, never 54-107
    planes = [hu_to_unit(plane.astype(np.float32)) for plane in vol.data]
    return np.stack([resize(p, (size, size), order=1, anti_aliasing=True, preserve_range=True)
                     for p in planes]).astype(np.float32)



def load_image_set(name: str) -> np.ndarray:
    """The named set as float32 ``(S, 128, 128)``: MRI magnitudes (volume 99.5th percentile 1) or CT in [0, 1]."""
    from ..training import datasets

    if name == "mni152_heldout":
        return datasets.mni152_heldout_slices()
    if name == "mni152_validation":
        return mri_validation_slices()
    if name == "mni152_train":
        images, records = datasets.mni152_training_slices()
        one_mm = [i for i, r in enumerate(records) if r["resolution_mm"] == 1]
        return images[[one_mm[i] for i in np.linspace(0, len(one_mm) - 1, 10).round().astype(int)[1:-1]]]
    if name == "cranium_validation":
        return ct_validation_slices()
    if name == "cranium_test":
        return ct_validation_slices(slices=CRANIUM_TEST_SLICES)
    if name == "phantom_heldout":
        return datasets.ct_heldout_slices()
    raise ConfigError(f"data.images = {name!r}: unknown image set")


def _take(images: np.ndarray, count: int) -> torch.Tensor:
    if count < 0:
        raise ConfigError(f"data.count = {count}: must be >= 0 (0: all)")
    return torch.from_numpy(np.ascontiguousarray(images[:count] if count else images))


def mri_slices(
    *,
    images: Literal["mni152_heldout", "mni152_validation", "mni152_train"] = "mni152_heldout",
    count: int = 0,
    coils: int = 8,
    noise: float = 0.005,
    seed: int = 0,
) -> Volume:
    """Simulated multi-coil k-space ``fft2c(S x) + noise`` of a named set of magnitude slices.

    Args:
        images: the image set.
        count: the first ``count`` slices (0: all).
        coils: birdcage coils.
        noise: k-space noise std per real component (the images' 99.5th percentile is 1).
        seed: seeds the smooth phase and the noise.
    """
    from ..io.simulate import simulate_multicoil
    from ..samplers.transitions import gaussian_like

    mag = _take(load_image_set(images), count)
    gen = torch.Generator().manual_seed(seed)
    sim = simulate_multicoil(mag, coils=coils, generator=gen)
    kspace = sim.kspace + noise * gaussian_like(sim.kspace, gen)
    attrs = {"max": float(mag.max()), "noise_std": noise, "image_set": images, "coil_maps": sim.smaps}
    return Volume("mri", None, kspace=kspace.to(torch.complex64), reference=mag, attrs=attrs)


def ct_slices(
    *,
    images: Literal["cranium_test", "cranium_validation", "phantom_heldout"] = "cranium_test",
    count: int = 0,
) -> Volume:
    """CT slices of a named set in attenuation (1/mm); the operator simulates their sinograms.

    Args:
        images: the image set.
        count: the first ``count`` slices (0: all).
    """
    from ..io.hu import hu_to_mu

    unit = _take(load_image_set(images), count)
    image = hu_to_mu(unit * 2000.0 - 1000.0)  # the [0, 1] window back to HU, then to attenuation
    return Volume("ct", None, image=image, reference=image, affine=np.eye(4),
                  attrs={"hu": True, "max": float(image.max()), "image_set": images})
