"""Hounsfield units <-> linear attenuation, and simulated CT measurements from HU images.

``mu = mu_water * (1 + HU / 1000)`` with ``MU_WATER_PER_MM = 0.0192`` /mm, the attenuation of water at about
70 keV (NIST XCOM: mass attenuation 0.193 cm^2/g at 70 keV, density 1 g/cm^3), a typical effective energy of a
120 kVp clinical spectrum. Air (-1000 HU) maps to 0. With the projectors' geometry in mm, ``op(hu_to_mu(hu))`` is
the dimensionless line integral ``-log(I / I0)``.
"""
from __future__ import annotations

import torch

__all__ = ["MU_WATER_PER_MM", "add_poisson_noise", "hu_to_mu", "mu_to_hu", "simulate_sinogram"]

MU_WATER_PER_MM = 0.0192


def hu_to_mu(hu: torch.Tensor, mu_water: float = MU_WATER_PER_MM, clip_negative: bool = True) -> torch.Tensor:
    """Linear attenuation in 1/mm from HU; values below air are clipped to 0 unless ``clip_negative`` is False."""
    mu = mu_water * (1.0 + hu / 1000.0)
    return mu.clamp_min(0.0) if clip_negative else mu


def mu_to_hu(mu: torch.Tensor, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """HU from linear attenuation in 1/mm: ``1000 * (mu / mu_water - 1)``."""
    return 1000.0 * (mu / mu_water - 1.0)


def simulate_sinogram(hu: torch.Tensor, op: torch.nn.Module, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """Noiseless line integrals ``A mu`` of HU images ``(*batch, H, W)`` through the projector ``op`` (mm)."""
    return op(hu_to_mu(hu, mu_water))


def add_poisson_noise(sino: torch.Tensor, photons: float, generator: torch.Generator) -> torch.Tensor:
    """Transmission noise: counts ``~ Poisson(photons * exp(-sino))`` (at least 1), returned as
    ``-log(counts / photons)``.

    ``photons`` is the unattenuated count per detector cell (e.g. 1e5 for a normal dose, 1e4 for low dose). Draws
    on the generator's device (CPU generators draw on CPU and move the result).
    """
    rate = photons * torch.exp(-sino)
    counts = torch.poisson(rate.to(generator.device), generator=generator).to(sino.device)
    return -torch.log(counts.clamp_min(1.0) / photons)
