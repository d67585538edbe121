"""Schedule maths, one home for samplers, priors and training: noise-level grids in the VE/EDM variable
(descending, ending with 0) and the VP <-> VE conversions.

A VP grid point ``t`` with cumulative product ``alpha_bar_t`` maps to ``sigma_t = sqrt((1 - alpha_bar_t) /
alpha_bar_t)``; conversely ``alpha_bar = 1 / (1 + sigma^2)``. Imports torch only.
"""
from __future__ import annotations

import torch

__all__ = ["karras", "log_uniform", "vp_alpha_bar", "vp_alpha_bar_to_sigma", "vp_cosine_alpha_bar", "vp_linear",
           "vp_sigma_to_alpha_bar"]


def _with_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM grid ``(sigma_max^(1/rho) + i/(steps-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, then 0.

    Returns ``steps + 1`` values (float64), descending.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def log_uniform(steps: int, sigma_min: float = 0.01, sigma_max: float = 378.0) -> torch.Tensor:
    """Geometric grid from ``sigma_max`` to ``sigma_min`` (the score-SDE VE grid), then 0; ``steps + 1`` values."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return _with_zero(sigma_max * (sigma_min / sigma_max) ** ramp)


def vp_alpha_bar(beta_start: float = 1e-4, beta_end: float = 0.02, train_steps: int = 1000) -> torch.Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` for DDPM's linear beta schedule; float64, ``(train_steps,)``."""
    betas = torch.linspace(beta_start, beta_end, train_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def vp_cosine_alpha_bar(train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM's cosine schedule: ``beta_t = min(1 - f(t+1)/f(t), max_beta)``, ``f(t) = cos((t/T + s)/(1 + s)
    pi/2)^2``, and ``alpha_bar_t = prod_{u <= t} (1 - beta_u)``; float64, ``(train_steps,)``."""
    t = torch.arange(train_steps + 1, dtype=torch.float64) / train_steps
    f = torch.cos((t + s) / (1 + s) * torch.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


def vp_linear(
    steps: int, beta_start: float = 1e-4, beta_end: float = 0.02, train_steps: int = 1000
) -> torch.Tensor:
    """The DDIM/DDS/RED-diff grid: ``skip = train_steps // steps``, points ``{0, skip, ..., train_steps - skip}``
    walked downwards, each converted to ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``, then 0 (``alpha_bar = 1``).

    Returns ``steps + 1`` values (float64), descending.
    """
    skip = train_steps // steps
    if skip < 1:
        raise ValueError(f"steps must be <= train_steps ({train_steps})")
    abar = vp_alpha_bar(beta_start, beta_end, train_steps)
    grid = torch.arange(0, train_steps, skip)[:steps].flip(0)
    return _with_zero(vp_alpha_bar_to_sigma(abar[grid]))


def vp_alpha_bar_to_sigma(alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """VE noise level of a VP point: ``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` (float64)."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return ((1 - ab) / ab).sqrt()


def vp_sigma_to_alpha_bar(sigma: torch.Tensor | float) -> torch.Tensor:
    """``alpha_bar = 1 / (1 + sigma^2)``."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    return 1.0 / (1.0 + s**2)
