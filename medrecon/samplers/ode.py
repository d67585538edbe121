"""Deterministic samplers of the prior alone: EDM's Heun method and DPM-Solver++(2M)."""
from __future__ import annotations

import math

import torch

from medrecon.priors.base import Denoiser

from .problem import InverseProblem
from .schedules import karras
from .state import Sampler, State

__all__ = ["DPMSolverPP2M", "Heun"]


class Heun(Sampler):
    """EDM's second-order Heun integrator of the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma``
    (no churn). Two denoiser calls per step, one on the last (Euler to ``sigma = 0``)."""

    needs_problem = False

    def __init__(self, sigmas: torch.Tensor | None = None, init_var: float = 0.0):
        super().__init__(karras(18) if sigmas is None else sigmas, init_var)

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x0 = denoiser(state.x, sigma)
        d = (state.x - x0) / sigma
        x = state.x + (sigma_next - sigma) * d
        if sigma_next > 0:
            x0_next = denoiser(x, sigma_next)
            d_next = (x - x0_next) / sigma_next
            x = state.x + (sigma_next - sigma) * 0.5 * (d + d_next)
        return state.advance(x, x0)


class DPMSolverPP2M(Sampler):
    """DPM-Solver++(2M): multistep second-order data-prediction solver in ``lambda = -log sigma``; one denoiser
    call per step, the previous estimate kept in ``aux["previous_x0"]``."""

    needs_problem = False

    def __init__(self, sigmas: torch.Tensor | None = None, init_var: float = 0.0):
        super().__init__(karras(20) if sigmas is None else sigmas, init_var)

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        i = state.step
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        x0 = denoiser(state.x, sigma)
        if sigma_next == 0:
            return state.advance(x0, x0, previous_x0=x0)
        h = math.log(sigma / sigma_next)
        estimate = x0
        if i > 0:
            r = math.log(self.sigmas[i - 1] / sigma) / h
            estimate = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * state.aux["previous_x0"]
        x = (sigma_next / sigma) * state.x - math.expm1(-h) * estimate
        return state.advance(x, x0, previous_x0=x0)
