"""VE predictor-corrector sampling with hard data consistency after each update (score-MRI / POCS style)."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from medrecon.priors.base import Denoiser
from operators import inner

from .problem import InverseProblem
from .schedules import log_uniform
from .state import Sampler, State
from .transitions import gaussian_like

__all__ = ["PredictorCorrector"]

DataConsistency = Callable[[torch.Tensor, InverseProblem], torch.Tensor]


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim)).to(like.real.dtype)


class PredictorCorrector(Sampler):
    """Per step: ``corrector_steps`` Langevin corrector steps at ``sigma`` (step
    ``2 (snr ||xi|| / ||score||)^2``), data consistency, a reverse-diffusion predictor step to ``sigma_next``
    (``x + (sigma^2 - sigma_next^2) score + sqrt(sigma^2 - sigma_next^2) xi``), data consistency.

    The last predictor step (to ``sigma_next = 0``) adds no noise and returns the Tweedie estimate. ``dc`` acts on
    the noisy iterate (e.g. ``Projection()``: replace the measured k-space by the clean measurement); ``None``
    samples the prior. NFE per step: ``1 + corrector_steps``.

    Args:
        sigmas: descending grid ending with 0; score-MRI uses ``log_uniform(2000, 0.01, 378)``.
        snr: corrector signal-to-noise ratio (0.16).
        corrector_steps: Langevin steps per noise level.
        dc: data consistency on the iterate, or None.
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

    def _score(self, denoiser: Denoiser, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = denoiser(x, sigma)
        return (x0 - x) / sigma**2, x0

    def _dc(self, x: torch.Tensor, problem: InverseProblem | None) -> torch.Tensor:
        return x if self.dc is None else self.dc(x, self._require(problem))

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x = state.x
        for _ in range(self.corrector_steps):
            score, _ = self._score(denoiser, x, sigma)
            xi = gaussian_like(x, generator)
            ratio = inner(xi, xi).sqrt() / inner(score, score).sqrt().clamp_min(1e-30)
            eps = 2.0 * (self.snr * ratio) ** 2
            x = x + _per_sample(eps, x) * score + _per_sample((2.0 * eps).sqrt(), x) * xi
            x = self._dc(x, problem)
        score, x0 = self._score(denoiser, x, sigma)
        d = sigma**2 - sigma_next**2
        x = x + d * score
        if sigma_next > 0:
            x = x + math.sqrt(d) * gaussian_like(x, generator)
        return state.advance(self._dc(x, problem), x0)
