"""RED-Diff: Adam on a point estimate ``mu`` with a denoising-diffusion regulariser (no back-propagation)."""
from __future__ import annotations

import math
from typing import Literal

import torch

from medrecon.priors.base import Denoiser
from operators import cg

from .consistency import Projection
from .problem import InverseProblem
from .schedules import vp_linear
from .state import Sampler, State
from .transitions import gaussian_like

__all__ = ["WEIGHTINGS", "REDDiff", "weight"]

Weighting = Literal["linear", "sqrt", "square", "log", "constant", "snr"]
WEIGHTINGS: tuple[str, ...] = ("linear", "sqrt", "square", "log", "constant", "snr")


def weight(kind: str, sigma: float) -> float:
    """Regulariser weight ``w(sigma)``; ``sigma = sqrt(1 - alpha_bar) / sqrt(alpha_bar)`` is the inverse square
    root SNR. ``linear``: sigma (RED-diff's default), ``sqrt``: sqrt(sigma), ``square``: sigma^2,
    ``log``: log(1 + sigma), ``constant``: 1, ``snr``: 1 / sigma (turns the regulariser into the gradient of the
    ``sigma``-smoothed prior's negative log-density, i.e. a MAP objective)."""
    table = {
        "linear": sigma,
        "sqrt": math.sqrt(sigma),
        "square": sigma**2,
        "log": math.log1p(sigma),
        "constant": 1.0,
        "snr": 1.0 / sigma,
    }
    if kind not in table:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {kind!r}")
    return table[kind]


def _real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


class REDDiff(Sampler):
    """Per step at noise level ``sigma`` (descending grid; the final 0 is not visited): draw ``eps``, form
    ``x = mu + sigma eps``, ``eps_hat = (x - D(x, sigma)) / sigma`` (detached) and take one Adam step along

        ``obs_weight A^H (A mu - y) / sigma_y^2 + lam w(sigma) (eps_hat - eps)``,

    the gradient of the negative log-likelihood (``sigma_y = InverseProblem.sigma_y``) plus RED-diff's
    denoising regulariser. With ``weighting="snr"`` and ``lam = 1`` the regulariser is the gradient of the
    ``sigma``-smoothed prior's negative log-density, so the fixed point is that prior's MAP estimate. For
    noiseless data (``sigma_y = 0``) the data term becomes a constraint: each Adam step on the regulariser is
    followed by the projection onto ``{A mu = y}`` (``Projection``). Adam acts on real components, so only the
    ratio of the two terms matters.

    For a Gaussian prior ``N(m0, C)`` and a fixed ``sigma`` the expected gradient vanishes at
    ``(obs_weight / sigma_y^2 A^H A + lam w sigma (C + sigma^2 I)^{-1}) mu = obs_weight / sigma_y^2 A^H y
    + lam w sigma (C + sigma^2 I)^{-1} m0`` (tests check this stationary point).

    Args:
        sigmas: descending grid ending with 0; default ``vp_linear(steps)`` as in RED-diff.
        lr: Adam learning rate (in image units).
        lam: regulariser weight.
        weighting: one of ``WEIGHTINGS``.
        obs_weight: data-term weight (1: the likelihood's own).
        init: ``"adjoint"`` (``mu = A^H y``) or ``"cg"`` (CG on ``A^H A mu = A^H y`` from 0: up to ``init_cg_iters``
            iterations, stopped at relative residual 1e-6).
        betas, adam_eps: Adam constants.
        projection: the projection used for noiseless data.
    """

    def __init__(
        self,
        sigmas: torch.Tensor | None = None,
        steps: int = 50,
        lr: float = 0.1,
        lam: float = 1.0,
        weighting: Weighting = "snr",
        obs_weight: float = 1.0,
        init: Literal["adjoint", "cg"] = "cg",
        init_cg_iters: int = 20,
        betas: tuple[float, float] = (0.9, 0.99),
        adam_eps: float = 1e-8,
        projection: Projection | None = None,
    ):
        super().__init__(vp_linear(steps) if sigmas is None else sigmas, init_var=0.0)
        weight(weighting, 1.0)
        if init not in ("adjoint", "cg"):
            raise ValueError("init must be 'adjoint' or 'cg'")
        self.lr, self.lam, self.weighting, self.obs_weight = lr, lam, weighting, obs_weight
        self.init_mode, self.init_cg_iters, self.betas, self.adam_eps = init, init_cg_iters, betas, adam_eps
        self.projection = projection or Projection()

    def init(self, problem, denoiser, generator, shape=None, dtype=None, device=None) -> State:
        problem = self._require(problem)
        aty = problem.adjoint_y
        if self.init_mode == "cg":
            mu = cg(problem.A.normal, aty, iters=self.init_cg_iters, tol=1e-6)
        else:
            mu = aty.clone()
        zeros = torch.zeros_like(_real(mu))
        return State(
            x=mu.clone(), x0=mu, log_weights=mu.new_zeros(mu.shape[0], dtype=mu.real.dtype),
            aux={"adam_m": zeros, "adam_v": zeros.clone()},
        )

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        problem = self._require(problem)
        sigma = self.sigmas[state.step]
        mu = state.x0
        eps = gaussian_like(mu, generator)
        x = mu + sigma * eps
        eps_hat = (x - problem.restrict(denoiser(x, sigma))) / sigma
        grad = (self.lam * weight(self.weighting, sigma)) * (eps_hat - eps)
        noiseless = problem.sigma_y == 0
        if not noiseless:
            grad = grad + (self.obs_weight / problem.sigma_y**2) * problem.A.adjoint(-problem.residual(mu))
        b1, b2 = self.betas
        t = state.step + 1
        g = _real(grad)
        adam_m = b1 * state.aux["adam_m"] + (1 - b1) * g
        adam_v = b2 * state.aux["adam_v"] + (1 - b2) * g * g
        update = (adam_m / (1 - b1**t)) / ((adam_v / (1 - b2**t)).sqrt() + self.adam_eps)
        new_mu = _real(mu) - self.lr * update
        new_mu = torch.view_as_complex(new_mu.contiguous()) if mu.is_complex() else new_mu
        new_mu = problem.restrict(new_mu)  # projected onto the support (zero where no measurement sees the image)
        if noiseless:
            new_mu = self.projection.solve(new_mu, problem, problem.y)
        return state.advance(x, new_mu, adam_m=adam_m, adam_v=adam_v)

    def result(self, state: State) -> torch.Tensor:
        return state.x0
