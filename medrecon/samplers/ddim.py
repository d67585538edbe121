"""DDIM with optional data consistency on the Tweedie estimate: DDS, DDIM + projection, unconditional DDIM."""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from medrecon.priors.base import Denoiser

from .consistency import KrylovCG, Projection
from .problem import InverseProblem
from .schedules import vp_linear
from .state import Sampler, State
from .transitions import ddim_step, dds_step

__all__ = ["DDIM", "ddim_projection", "dds"]

DataConsistency = Callable[[torch.Tensor, InverseProblem], torch.Tensor]


class DDIM(Sampler):
    """One denoiser call per step: ``x0 = D(x, sigma)``, ``eps = (x - x0) / sigma``, ``x0' = dc(x0)``, then
    re-noise to ``sigma_next`` (the last step returns ``x0'``).

    Args:
        sigmas: descending grid ending with 0 (``schedules``).
        eta: stochasticity; with ``noise="ddim"`` DDIM's eta (0 deterministic, 1 ancestral), with
            ``noise="dds"`` DDS's mixing ``x_next = x0' + sigma_next (eta xi + sqrt(1 - eta^2) eps)``.
        noise: which re-noising rule.
        dc: data consistency applied to the Tweedie estimate (``KrylovCG``, ``Projection``) or None
            (unconditional DDIM).
        init_var: see ``Sampler``.
    """

    def __init__(
        self,
        sigmas: torch.Tensor,
        eta: float = 0.0,
        noise: Literal["ddim", "dds"] = "ddim",
        dc: DataConsistency | None = None,
        init_var: float = 1.0,
    ):
        super().__init__(sigmas, init_var)
        if noise not in ("ddim", "dds"):
            raise ValueError(f"noise must be 'ddim' or 'dds', got {noise!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError("eta must lie in [0, 1]")
        self.eta, self.noise, self.dc = eta, noise, dc
        self.needs_problem = dc is not None

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x0 = denoiser(state.x, sigma)
        eps = (state.x - x0) / sigma
        if self.dc is not None:
            x0 = self.dc(x0, self._require(problem))
        if sigma_next == 0:
            x = x0
        elif self.noise == "dds":
            x = dds_step(x0, eps, sigma_next, self.eta, generator)
        else:
            x = ddim_step(x0, eps, sigma, sigma_next, self.eta, generator)
        return state.advance(x, x0)


def dds(
    steps: int = 50,
    eta: float = 0.85,
    cg_iters: int = 5,
    gamma: float = 1.0,
    tol: float | None = None,
    sigmas: torch.Tensor | None = None,
) -> DDIM:
    """DDS with its published defaults: VP linear grid of ``steps`` points (or the given ``sigmas``), DDS noise
    ``eta``, ``cg_iters`` CG iterations on ``(A^H A + gamma I) x = A^H y + gamma x0_hat`` (``gamma = 0``: the
    noiseless normal equations, early stopping as the regulariser)."""
    grid = vp_linear(steps) if sigmas is None else sigmas
    return DDIM(grid, eta=eta, noise="dds", dc=KrylovCG(cg_iters, gamma, tol))


def ddim_projection(steps: int = 50, eta: float = 0.85, iters: int = 20, tol: float | None = 1e-6) -> DDIM:
    """DDIM on the VP linear grid with a hard projection onto ``A x = y`` of every Tweedie estimate
    (score-MRI-style data consistency inside DDIM)."""
    return DDIM(vp_linear(steps), eta=eta, noise="dds", dc=Projection(iters, tol))
