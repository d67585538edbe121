"""Diffusion posterior sampling (DPS) and manifold-constrained gradients (MCG): ancestral steps guided by the
gradient of ``||y - A D(x, sigma)||`` taken through the denoiser."""
from __future__ import annotations

import math

import torch

from medrecon.priors.base import Denoiser

from .consistency import Projection, residual_norm_gradient
from .problem import InverseProblem
from .schedules import vp_linear
from .state import Sampler, State
from .transitions import ddim_step, gaussian_like

__all__ = ["DPS"]


class DPS(Sampler):
    """``x_next = ddim_step(D(x), eps, eta) - zeta_eff grad_x ||y - A D(x, sigma)||``.

    The unsquared norm makes this the paper's step ``zeta / ||y - A x0_hat||`` on the squared loss. With
    ``vp_scaling`` the step is the VP chain's ``zeta`` carried into the VE variable,
    ``zeta_eff = zeta sqrt((1 + sigma^2)(1 + sigma_next^2))``, so published ``zeta`` values apply to networks
    trained in VP form with unit-range data; without it ``zeta_eff = zeta``.

    With ``mcg=True`` each step is followed by a projection onto ``A x = y + sigma_next A xi`` (the measurement
    noised to the next level; the clean ``y`` at the last step), as in MCG.

    Args:
        sigmas: descending grid ending with 0; DPS uses 1000 VP steps (``vp_linear(1000)``).
        zeta: guidance step.
        eta: 1 for the ancestral (DDPM) step, 0 for deterministic DDIM.
    """

    requires_grad = True

    def __init__(
        self,
        sigmas: torch.Tensor | None = None,
        zeta: float = 1.0,
        eta: float = 1.0,
        vp_scaling: bool = True,
        mcg: bool = False,
        projection: Projection | None = None,
        init_var: float = 1.0,
    ):
        super().__init__(vp_linear(1000) if sigmas is None else sigmas, init_var)
        self.zeta, self.eta, self.vp_scaling, self.mcg = zeta, eta, vp_scaling, mcg
        self.projection = projection or Projection()

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        problem = self._require(problem)
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x = state.x.detach().requires_grad_(True)
        x0 = denoiser(x, sigma)
        grad, norms = residual_norm_gradient(x, x0, problem)
        x0, x = x0.detach(), x.detach()
        eps = (x - x0) / sigma
        scale = self.zeta * (math.sqrt((1 + sigma**2) * (1 + sigma_next**2)) if self.vp_scaling else 1.0)
        x_next = (x0 if sigma_next == 0 else ddim_step(x0, eps, sigma, sigma_next, self.eta, generator))
        x_next = x_next - scale * grad
        if self.mcg:
            target = problem.y
            if sigma_next > 0:
                target = target + sigma_next * problem.A(gaussian_like(x0, generator))
            with torch.no_grad():
                x_next = self.projection(x_next, problem, target)
        return state.advance(x_next, x0, residual_norm=norms)
