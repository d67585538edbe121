"""Independent chains of a single-chain sampler, run as one batch: the reconstruction is their mean.

A single run of DDS, DPS or RED-Diff returns one draw of (an approximation of) the posterior ``p(x0 | y)``; its
squared error is that of the posterior mean plus the posterior variance. The mean of ``K`` independent draws
keeps the first term and divides the second by ``K``, so under a broad posterior (few CT views, high
acceleration) ``K`` chains of ``steps / K`` steps can beat one chain of ``steps`` at the same number of network
evaluations per image (``K x steps``). The spread of the chains is returned as ``std`` and a central credible
interval ``lower`` / ``upper`` (``smc.particles.weighted_summary`` with equal weights; with few chains the
interval is only indicative).

The ``K`` copies of each image are stacked copy-major along the batch (``(K * B, *image)``, as
``torch.cat([x] * K)``) and the problem is repeated with ``operators.RepeatBatch``, so the wrapped sampler, its
checkpoints and the driver see one ordinary batch; one denoiser call evaluates every chain of every image. A
start estimate (``DDIM(x_init=...)``, e.g. TV) is computed once per image on the original problem and shared by
its chains.
"""
from __future__ import annotations

import copy

import torch

from operators import RepeatBatch

from .problem import InverseProblem
from .smc.particles import weighted_summary
from .state import Sampler, State

__all__ = ["IndependentChains", "repeat_problem"]


def repeat_problem(problem: InverseProblem, copies: int) -> InverseProblem:
    """``problem`` with its batch ``B`` stacked ``copies`` times, copy-major: ``y`` ``(copies * B, *range)``, the
    operator ``RepeatBatch(A, copies)``, the support repeated when it is per sample."""
    domain_ndim = problem.adjoint_y.ndim - 1
    support = problem.support
    if support is not None and support.shape[0] > 1:
        support = torch.cat([support] * copies)
    return InverseProblem(RepeatBatch(problem.A, copies, domain_ndim, problem.y.ndim - 1),
                          torch.cat([problem.y] * copies), problem.sigma_y, support)


class IndependentChains(Sampler):
    """``chains`` independent runs of ``sampler`` on every image, batched; ``result`` is their mean (module
    docstring).

    Args:
        sampler: a single-chain sampler (one sample per image; not an SMC ensemble, not one that couples its
            batch).
        chains: ``K`` >= 2 chains per image.
        level: credible level of the ``lower`` / ``upper`` maps.
    """

    def __init__(self, sampler: Sampler, chains: int, level: float = 0.9):
        if isinstance(chains, bool) or not isinstance(chains, int) or chains < 2:
            raise ValueError(f"chains must be an integer of at least 2, got {chains!r}")
        if int(getattr(sampler, "samples_per_image", 1)) != 1:
            raise ValueError(f"{type(sampler).__name__} already runs particles; chains need a single-chain sampler")
        if getattr(sampler, "couples_batch", False):
            raise ValueError(f"{type(sampler).__name__} couples the slices of its batch; chains would couple copies")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        super().__init__(torch.tensor(sampler.sigmas, dtype=torch.float64), sampler.init_var)
        self.base = sampler  # as given (the chains run a copy whose start estimate runs once per image)
        start = getattr(sampler, "x_init", None)
        if start is not None:  # one start estimate per image (e.g. TV), shared by its chains, computed once
            sampler = copy.copy(sampler)
            sampler.x_init = lambda repeated: torch.cat([start(self._original(repeated))] * self.chains)
        self.sampler, self.chains, self.level = sampler, chains, level
        self.samples_per_image = chains
        self.requires_grad = sampler.requires_grad
        self.needs_problem = sampler.needs_problem
        self._repeated: tuple[InverseProblem, InverseProblem] | None = None

    def _problem(self, problem: InverseProblem | None) -> InverseProblem | None:
        """The repeated problem (built once per problem: it caches ``A^H y``)."""
        if problem is None:
            return None
        if self._repeated is None or self._repeated[0] is not problem:
            self._repeated = (problem, repeat_problem(problem, self.chains))
        return self._repeated[1]

    def _original(self, repeated: InverseProblem) -> InverseProblem:
        """The problem that ``repeated`` repeats."""
        if self._repeated is None or self._repeated[1] is not repeated:
            raise ValueError("not a problem these chains repeated")
        return self._repeated[0]

    def init(self, problem, denoiser, generator, shape=None, dtype=None, device=None) -> State:
        if shape is not None:
            shape = (self.chains * shape[0], *shape[1:])
        return self.sampler.init(self._problem(problem), denoiser, generator, shape, dtype, device)

    def step(self, state: State, problem, denoiser, generator: torch.Generator) -> State:
        return self.sampler.step(state, self._problem(problem), denoiser, generator)

    def particles(self, state: State) -> torch.Tensor:
        """Every chain's reconstruction, ``(K, B, *image)``."""
        x = self.sampler.result(state)
        return x.reshape(self.chains, x.shape[0] // self.chains, *x.shape[1:])

    def result(self, state: State) -> torch.Tensor:
        """The mean of the chains, ``(B, *image)``."""
        return self.particles(state).mean(0)

    def outputs(self, state: State) -> dict[str, torch.Tensor]:
        """``std``, ``lower`` and ``upper`` maps of the chains (magnitudes for complex images), ``(B, *image)``."""
        x = self.particles(state)
        summary = weighted_summary(x, x.new_zeros(x.shape[:2], dtype=x.real.dtype), self.level)
        return {k: summary[k] for k in ("std", "lower", "upper")}
