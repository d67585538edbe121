"""Data components over the toolkit's named image sets, for benchmarks and the choice of defaults.

``mri_slices`` simulates multi-coil k-space (birdcage coils, smooth random phase, complex Gaussian noise of a
stated std) from real-valued magnitude slices; ``ct_slices`` gives CT slices in attenuation units (the operator
simulates the sinograms). The sets:

* ``mni152_heldout``: the MNI152 band that the shipped MRI prior never saw (reported by ``bench quality``);
  ``mni152_validation``: slices of the same excluded band outside it (defaults are chosen on these).
* ``cranium_test``, ``cranium_validation``: real head-CT slices 0-53 of the InVesalius "Cranium" example, split
  into two interleaved sets of six, 4 slices (6 mm) apart (slices 54-107 are kept for independent evaluation and
  never read); ``phantom_heldout``: random anatomy phantoms with seeds the CT prior never saw.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError
from .problem import Volume

__all__ = ["CRANIUM_TEST_SLICES", "ct_slices", "load_image_set", "mri_slices"]

CRANIUM_TEST_SLICES = (4, 13, 22, 31, 40, 49)


def load_image_set(name: str) -> np.ndarray:
    """The named set as float32 ``(S, 128, 128)``: MRI magnitudes (volume 99.5th percentile 1) or CT in [0, 1]."""
    from ..bench import validation
    from ..training import datasets

    if name == "mni152_heldout":
        return datasets.mni152_heldout_slices()
    if name == "mni152_validation":
        return validation.mri_validation_slices()
    if name == "cranium_validation":
        return validation.ct_validation_slices()
    if name == "cranium_test":
        return validation.ct_validation_slices(slices=CRANIUM_TEST_SLICES)
    if name == "phantom_heldout":
        return datasets.ct_heldout_slices()
    raise ConfigError(f"data.images = {name!r}: unknown image set")


def _take(images: np.ndarray, count: int) -> torch.Tensor:
    if count < 0:
        raise ConfigError(f"data.count = {count}: must be >= 0 (0: all)")
    return torch.from_numpy(np.ascontiguousarray(images[:count] if count else images))


def mri_slices(
    *,
    images: Literal["mni152_heldout", "mni152_validation"] = "mni152_heldout",
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
