"""Sequential Monte Carlo posterior samplers: weighted particles ``(P, B, *image)`` that converge to the posterior
of the model's reverse chain as the particle count grows, with uncertainty maps and ESS diagnostics.

- ``smc``: gradient-free twisted SMC (the Tweedie twist with an isotropic Jacobian, or the noisy-measurement
  twist ``N(y; A x, sigma_y^2 I + sigma^2 A A^H)``, MCGdiff / FPS-SMC-like): no back-propagation through the
  network, any linear operator.
- ``tds``: twisted diffusion sampler (the Tweedie twist of DPS, gradient proposals through the network).
- ``afdps``: AFDPS-style ensemble (tilt by the plain likelihood at the noisy particle, exact Gaussian start;
  ``sde`` or ``ode`` + Langevin-corrector variants).
"""
from __future__ import annotations

from typing import Literal

import torch

from ..schedules import vp_linear
from .particles import (
    ess_fraction,
    gather_particles,
    normalised,
    systematic_indices,
    tempering_exponent,
    weighted_summary,
)
from .sampler import TwistedSMC
from .twists import MeasurementTwist, TweedieTwist, Twist

__all__ = [
    "MeasurementTwist",
    "TweedieTwist",
    "Twist",
    "TwistedSMC",
    "afdps",
    "ess_fraction",
    "gather_particles",
    "normalised",
    "smc",
    "systematic_indices",
    "tds",
    "tempering_exponent",
    "weighted_summary",
]


def _grid(steps: int, sigmas: torch.Tensor | None) -> torch.Tensor:
    return vp_linear(steps) if sigmas is None else sigmas


def smc(
    particles: int = 64,
    steps: int = 100,
    sigmas: torch.Tensor | None = None,
    twist: Literal["tweedie", "measurement"] = "tweedie",
    proposal: Literal["gradient", "conjugate", "prior"] = "gradient",
    lam: float = 1.0,
    sigma_data: float | None = None,
    kappa: float = 1.0,
    ess_threshold: float = 0.5,
    cg_iters: int = 50,
    tol: float | None = 1e-8,
    **options,
) -> TwistedSMC:
    """Gradient-free twisted SMC (no back-propagation through the network).

    ``twist="tweedie"``: the Tweedie twist ``N(y; A D(x), sigma_y^2 I + r^2 A A^H)`` with gradient proposals
    through the isotropic Jacobian ``r^2 / sigma^2`` (exact weights, one network call per step).
    ``twist="measurement"``: the noisy-particle twist ``N(y; A x, sigma_y^2 I + kappa sigma^2 A A^H)``
    (MCGdiff / FPS-like), with ``gradient`` or exact ``conjugate`` proposals and an exact Gaussian start.
    Further ``options`` go to ``TwistedSMC``."""
    if twist == "tweedie":
        chosen: Twist = TweedieTwist(cg_iters, tol, lam, sigma_data, "isotropic")
    elif twist == "measurement":
        chosen = MeasurementTwist(cg_iters, tol, kappa)
        options.setdefault("start", "exact")
    else:
        raise ValueError(f"twist must be 'tweedie' or 'measurement', got {twist!r}")
    return TwistedSMC(_grid(steps, sigmas), particles, chosen, proposal, ess_threshold=ess_threshold, **options)


def tds(
    particles: int = 64,
    steps: int = 100,
    sigmas: torch.Tensor | None = None,
    lam: float = 1.0,
    sigma_data: float | None = None,
    ess_threshold: float = 0.5,
    cg_iters: int = 50,
    tol: float | None = 1e-8,
    **options,
) -> TwistedSMC:
    """Twisted diffusion sampler: the Tweedie twist ``N(y; A D(x), sigma_y^2 I + r^2 A A^H)`` with gradient
    proposals through the network (one vector-Jacobian product per step)."""
    return TwistedSMC(_grid(steps, sigmas), particles, TweedieTwist(cg_iters, tol, lam, sigma_data, "network"),
                      "gradient",
                      ess_threshold=ess_threshold, **options)


def afdps(
    particles: int = 64,
    steps: int = 100,
    sigmas: torch.Tensor | None = None,
    variant: Literal["sde", "ode"] = "ode",
    proposal: Literal["conjugate", "gradient"] = "conjugate",
    kappa: float = 0.0,
    corrector_steps: int | None = None,
    ess_threshold: float = 0.5,
    cg_iters: int = 50,
    tol: float | None = 1e-8,
    **options,
) -> TwistedSMC:
    """AFDPS-style ensemble: targets ``p_sigma(x) exp(-mu_y(x))`` (``kappa = 0``; ``kappa > 0`` anneals the
    likelihood width as ``sigma_y^2 + kappa sigma^2``) from its exact Gaussian start. ``ode`` (default):
    deterministic DDIM transport reweighted by the tilt, then ``corrector_steps`` (default 1)
    Langevin steps of ``1 / L`` (``corrector_step = 1``).
    ``sde``: the ancestral kernel tilted by the likelihood (``conjugate``: exact at any step size;
    ``gradient``: the paper's Euler-Maruyama drift, stable only while ``c^2 ||A||^2 < sigma_y^2``). The SDE
    variant's weights have a variance that grows like ``sigma_max^2 m / sigma_y^2`` (``m`` measurements) and
    does not shrink with the step size; prefer ``ode`` for small ``sigma_y``."""
    twist = MeasurementTwist(cg_iters, tol, kappa)
    if variant == "ode":
        steps_c = 1 if corrector_steps is None else corrector_steps
        options.setdefault("corrector_step", 1.0)
        return TwistedSMC(_grid(steps, sigmas), particles, twist, "prior", predictor="ode", start="exact",
                          corrector_steps=steps_c, ess_threshold=ess_threshold, **options)
    if variant != "sde":
        raise ValueError(f"variant must be 'sde' or 'ode', got {variant!r}")
    return TwistedSMC(_grid(steps, sigmas), particles, twist, proposal, start="exact",
                      corrector_steps=corrector_steps or 0, ess_threshold=ess_threshold, **options)
