"""Simulate multi-coil k-space from images: birdcage coil maps, optional smooth random phase, centred FFT."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from operators.mri import fft2c, ifft2c

__all__ = ["Simulated", "birdcage_maps", "fft_rss", "simulate_multicoil", "smooth_phase"]


@dataclass(frozen=True)
class Simulated:
    """Output of :func:`simulate_multicoil`.

    Attributes:
        kspace: fully sampled k-space ``(S, C, H, W)`` complex64.
        smaps: coil maps ``(C, H, W)`` complex64 with ``sum_c |S_c|^2 = 1``.
        images: the complex images that were simulated ``(S, H, W)`` (with the added phase).
        rss: root-sum-of-squares reference ``(S, H, W)`` float32 (equals ``|images|``).
    """

    kspace: torch.Tensor
    smaps: torch.Tensor
    images: torch.Tensor
    rss: torch.Tensor


def birdcage_maps(coils: int, shape: tuple[int, int], r: float = 1.5) -> torch.Tensor:
    """``sigpy.mri.birdcage_maps`` normalised so that ``sum_c |S_c|^2 = 1`` everywhere; ``(coils, H, W)``."""
    from sigpy.mri import birdcage_maps as sigpy_birdcage

    maps = sigpy_birdcage((coils, *shape), r=r, dtype=np.complex64)
    maps = maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))
    return torch.from_numpy(maps.astype(np.complex64))


def smooth_phase(
    count: int, shape: tuple[int, int], generator: torch.Generator, max_phase: float = math.pi, order: int = 3
) -> torch.Tensor:
    """Smooth random phase maps ``(count, H, W)`` in radians: a random low-order 2D polynomial, scaled so that
    the largest excursion is ``max_phase``."""
    h, w = shape
    y = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None]
    x = torch.linspace(-1, 1, w, dtype=torch.float64)[None, :]
    terms = [y**i * x**j for i in range(order + 1) for j in range(order + 1 - i)]
    basis = torch.stack([t.expand(h, w) for t in terms])
    coef = torch.randn(count, len(terms), generator=generator, dtype=torch.float64)
    phase = torch.einsum("sk,khw->shw", coef, basis)
    phase = phase - phase.mean(dim=(-2, -1), keepdim=True)
    phase = phase / phase.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12) * max_phase
    return phase.to(torch.float32)


def simulate_multicoil(
    images: torch.Tensor,
    coils: int = 8,
    generator: torch.Generator | None = None,
    max_phase: float = math.pi,
) -> Simulated:
    """Multi-coil k-space of images ``(S, H, W)`` (real or complex): ``y = fft2c(S_c * x)``.

    Args:
        images: ``(S, H, W)``; real images are given a smooth random phase when ``generator`` is passed.
        coils: number of birdcage coils.
        generator: draws the smooth phase; without it no phase is added.
        max_phase: largest phase excursion in radians.
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (S, H, W), got shape {tuple(images.shape)}")
    x = images.to(torch.complex64)
    if generator is not None:
        x = x * torch.polar(torch.ones(()), smooth_phase(x.shape[0], tuple(x.shape[-2:]), generator, max_phase))
    smaps = birdcage_maps(coils, tuple(x.shape[-2:]))
    kspace = fft2c(x.unsqueeze(1) * smaps)
    rss = fft_rss(kspace)
    return Simulated(kspace=kspace, smaps=smaps, images=x, rss=rss)


def fft_rss(kspace: torch.Tensor) -> torch.Tensor:
    """Root sum of squares over coils of the coil images of ``kspace`` ``(S, C, H, W)``; ``(S, H, W)`` float."""
    return ifft2c(kspace).abs().square().sum(dim=1).sqrt()
