"""VE predictor-corrector sampling of the posterior: Langevin corrector and reverse-diffusion predictor steps driven
by the score of the data-consistent Tweedie estimate (score-MRI / annealed Langevin, noise-aware)."""
from __future__ import annotations

import math

import torch

from medrecon.priors.base import Denoiser
from operators import inner

from .ddim import DataConsistency, tweedie_with_dc
from .problem import InverseProblem
from .schedules import log_uniform
from .state import Sampler, State
from .transitions import gaussian_like

__all__ = ["PredictorCorrector"]


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim)).to(like.real.dtype)


class PredictorCorrector(Sampler):
    """Per step: ``corrector_steps`` Langevin corrector steps at ``sigma`` (step ``2 (snr ||xi|| / ||score||)^2``),
    then a reverse-diffusion predictor step to ``sigma_next``
    (``x + (sigma^2 - sigma_next^2) score + sqrt(sigma^2 - sigma_next^2) xi``).

    The score is ``(x0' - x) / sigma^2`` with ``x0' = dc(D(x, sigma), x, sigma, problem)``: with a proximal
    ``dc`` (``Projection``, ``KrylovCG``) the posterior score under the Gaussian approximation of ``x0 | x``,
    which follows the measurement noise ``sigma_y`` and is exact for an isotropic Gaussian prior; ``None``
    samples the prior. The last predictor step (to ``sigma_next = 0``) adds no noise and returns ``x0'``.
    NFE per step: ``1 + corrector_steps``.

    Args:
        sigmas: descending grid ending with 0; score-MRI uses ``log_uniform(2000, 0.01, 378)``.
        snr: corrector signal-to-noise ratio (0.16).
        corrector_steps: Langevin steps per noise level.
        dc: data consistency on the Tweedie estimate, or None.
    """

    def __init__(
        self,
        sigmas: torch.Tensor | None = None,
        snr: float = 0.16,
        corrector_steps: int = 1,
        dc: DataConsistency | None = None,
        init_var: float = 0.0,
    ):
        super().__init__(log_uniform(2000) if sigmas is None else sigmas, init_var)
        self.snr, self.corrector_steps, self.dc = snr, corrector_steps, dc
        self.needs_problem = dc is not None
        self.requires_grad = bool(getattr(dc, "needs_grad", False))

    def _score(self, denoiser: Denoiser, x: torch.Tensor, sigma: float, problem: InverseProblem | None):
        _, x0 = tweedie_with_dc(denoiser, x, sigma, self.dc, problem)
        return (x0 - x) / sigma**2, x0

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        if self.dc is not None:
            problem = self._require(problem)
        x = state.x
        for _ in range(self.corrector_steps):
            score, _ = self._score(denoiser, x, sigma, problem)
            xi = gaussian_like(x, generator)
            ratio = inner(xi, xi).sqrt() / inner(score, score).sqrt().clamp_min(1e-30)
            eps = 2.0 * (self.snr * ratio) ** 2
            x = x + _per_sample(eps, x) * score + _per_sample((2.0 * eps).sqrt(), x) * xi
        score, x0 = self._score(denoiser, x, sigma, problem)
        if sigma_next == 0:
            return state.advance(x0, x0)
        d = sigma**2 - sigma_next**2
        x = x + d * score + math.sqrt(d) * gaussian_like(x, generator)
        return state.advance(x, x0)
