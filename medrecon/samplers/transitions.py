"""The Gaussian transitions shared by the DDIM-family samplers, in the VE variable ``x = x0 + sigma eps``.

A transition is a value, ``GaussianStep(mean, std)`` (``x_next ~ N(mean, std^2 I)``): ``draw`` samples it and
``log_density`` evaluates it, so a proposal's density and a particle's incremental weight can be computed
(``medrecon.samplers.smc``). Complex tensors get noise with unit variance in each real component (the
complex-as-channels convention of the priors), i.e. ``E|xi|^2 = 2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from operators import inner

__all__ = [
    "GaussianStep",
    "ddim_noise_std",
    "ddim_step",
    "ddim_transition",
    "dds_step",
    "dds_transition",
    "draw",
    "gaussian_like",
    "log_density",
]


@dataclass(frozen=True)
class GaussianStep:
    """The transition ``x_next ~ N(mean, std^2 I)``: ``mean`` of the sample's shape, ``std`` per real component
    (0: deterministic)."""

    mean: torch.Tensor
    std: float


def draw(step: GaussianStep, generator: torch.Generator | None) -> torch.Tensor:
    """A draw ``mean + std xi`` (exactly ``mean`` when ``std = 0``; a generator is needed otherwise)."""
    if step.std > 0:
        if generator is None:
            raise ValueError("a stochastic step draws noise: pass a torch.Generator")
        return step.mean + step.std * gaussian_like(step.mean, generator)
    return step.mean


def log_density(step: GaussianStep, x: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
    """``log N(x; mean, std^2 I)`` per sample (shape ``x.shape[:batch_dims]``), counting real components (a
    complex entry is two). Needs ``std > 0``: a deterministic step has no density."""
    if not step.std > 0:
        raise ValueError("a deterministic transition has no density")
    d = x - step.mean
    n = d[(0,) * batch_dims].numel() * (2 if d.is_complex() else 1)
    return -0.5 * inner(d, d, batch_dims) / step.std**2 - n * (math.log(step.std) + 0.5 * math.log(2 * math.pi))


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


def ddim_transition(
    x0: torch.Tensor, eps: torch.Tensor, sigma: float, sigma_next: float, eta: float
) -> GaussianStep:
    """DDIM's step ``N(x0 + sqrt(sigma_next^2 - c^2) eps, c^2 I)``, ``c = ddim_noise_std(sigma, sigma_next, eta)``.

    With ``eps = (x - x0) / sigma`` and ``eta = 1`` it is DDPM's ancestral kernel
    ``N(x0 + (sigma_next / sigma)^2 (x - x0), sigma_next^2 (1 - sigma_next^2 / sigma^2) I)``."""
    c = ddim_noise_std(sigma, sigma_next, eta)
    return GaussianStep(x0 + math.sqrt(max(0.0, sigma_next**2 - c**2)) * eps, c)


def dds_transition(x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, eta: float) -> GaussianStep:
    """DDS's re-noising ``N(x0 + sigma_next sqrt(1 - eta^2) eps, (eta sigma_next)^2 I)`` (VE form of its VP step).

    ``eps`` is the noise estimate from before data consistency, ``x0`` the data-consistent estimate."""
    std = sigma_next * eta if eta > 0 and sigma_next > 0 else 0.0
    return GaussianStep(x0 + (sigma_next * math.sqrt(max(0.0, 1.0 - eta**2))) * eps, std)


def ddim_step(
    x0: torch.Tensor,
    eps: torch.Tensor,
    sigma: float,
    sigma_next: float,
    eta: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """A draw of ``ddim_transition``: ``x0 + sqrt(sigma_next^2 - c^2) eps + c xi``."""
    return draw(ddim_transition(x0, eps, sigma, sigma_next, eta), generator)


def dds_step(
    x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, eta: float, generator: torch.Generator | None
) -> torch.Tensor:
    """A draw of ``dds_transition``: ``x0 + sigma_next (eta xi + sqrt(1 - eta^2) eps)``."""
    return draw(dds_transition(x0, eps, sigma_next, eta), generator)
