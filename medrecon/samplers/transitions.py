"""The Gaussian transition shared by the DDIM-family samplers, in the VE variable ``x = x0 + sigma eps``.

Complex tensors get noise with unit variance in each real component (the complex-as-channels convention of the
priors), i.e. ``E|xi|^2 = 2``.
"""
from __future__ import annotations

import math

import torch

__all__ = ["ddim_noise_std", "ddim_step", "dds_step", "gaussian_like"]


def gaussian_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device (std 1 per real component)."""
    if x.is_complex():
        real = torch.randn(x.shape + (2,), generator=generator, dtype=x.real.dtype, device=x.device)
        return torch.view_as_complex(real)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def ddim_noise_std(sigma: float, sigma_next: float, eta: float) -> float:
    """DDIM's fresh-noise std in the VE variable: ``eta * sigma_next * sqrt(1 - sigma_next^2 / sigma^2)``.

    ``eta = 0`` is the deterministic DDIM (probability-flow) step, ``eta = 1`` the ancestral (DDPM) step.
    """
    return eta * sigma_next * math.sqrt(max(0.0, 1.0 - (sigma_next / sigma) ** 2))


def ddim_step(
    x0: torch.Tensor,
    eps: torch.Tensor,
    sigma: float,
    sigma_next: float,
    eta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``x_next = x0 + sqrt(sigma_next^2 - c^2) eps + c xi`` with ``c = ddim_noise_std(sigma, sigma_next, eta)``."""
    c = ddim_noise_std(sigma, sigma_next, eta)
    out = x0 + math.sqrt(max(0.0, sigma_next**2 - c**2)) * eps
    if c > 0:
        if generator is None:
            raise ValueError("eta > 0 draws noise: pass a torch.Generator")
        out = out + c * gaussian_like(x0, generator)
    return out


def dds_step(
    x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, eta: float, generator: torch.Generator | None
) -> torch.Tensor:
    """DDS's re-noising ``x_next = x0 + sigma_next (eta xi + sqrt(1 - eta^2) eps)`` (VE form of its VP step).

    ``eps`` is the noise estimate from before data consistency, ``x0`` the data-consistent estimate.
    """
    out = x0 + (sigma_next * math.sqrt(max(0.0, 1.0 - eta**2))) * eps
    if eta > 0 and sigma_next > 0:
        if generator is None:
            raise ValueError("eta > 0 draws noise: pass a torch.Generator")
        out = out + (sigma_next * eta) * gaussian_like(x0, generator)
    return out
