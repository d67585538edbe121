"""Training and held-out patches of the ultrasound priors: simulated RF (``ultrasound_sim``), each frame
divided by its largest ``|rf|``, mu-law companded (mu = 255, the dehazing paper's ``C``) and cut into square
patches. Tissue frames cycle through speckle, cysts, point targets, layers and mixed phantoms; haze frames are
multipath clutter only. Training and held-out sets come from disjoint generator seeds.
"""
from __future__ import annotations

import numpy as np
import torch

from operators.ultrasound import mu_law_compress

__all__ = ["US_FRAME", "US_HELDOUT_SEED", "US_MU", "US_TRAIN_SEED", "companded_patches", "us_heldout", "us_training_set"]

US_FRAME = (128, 64)  # (samples, lines) of the simulated frames patches are cut from
US_MU = 255.0
US_TRAIN_SEED = 0
US_HELDOUT_SEED = 1_000_000
US_SOURCES = {"us_tissue": "any", "us_haze": "haze"}


def companded_patches(frames: torch.Tensor, size: int) -> np.ndarray:
    """Non-overlapping ``size x size`` patches ``(N, size, size)`` float32 of companded frames ``(n, H, W)``."""
    c = mu_law_compress(frames, US_MU)
    n, h, w = c.shape
    c = c[:, : h // size * size, : w // size * size]
    patches = c.reshape(n, h // size, size, w // size, size).permute(0, 1, 3, 2, 4).reshape(-1, size, size)
    return patches.numpy().astype(np.float32)


def _frames(source: str, n: int, seed: int) -> torch.Tensor:
    from .ultrasound_sim import simulate_frames

    if source not in US_SOURCES:
        raise ValueError(f"unknown ultrasound source {source!r}; allowed: {sorted(US_SOURCES)}")
    return simulate_frames(n, *US_FRAME, torch.Generator().manual_seed(seed), kind=US_SOURCES[source])[0]


def us_training_set(source: str, size: int, n_frames: int = 400) -> np.ndarray:
    """Companded training patches of ``us_tissue`` or ``us_haze`` (``n_frames`` frames, seed ``US_TRAIN_SEED``)."""
    return companded_patches(_frames(source, n_frames, US_TRAIN_SEED), size)


def us_heldout(source: str, size: int, n_frames: int = 4) -> np.ndarray:
    """Companded held-out patches (seed ``US_HELDOUT_SEED``, never used in training)."""
    return companded_patches(_frames(source, n_frames, US_HELDOUT_SEED), size)
