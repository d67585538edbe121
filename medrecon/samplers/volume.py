"""Volumes from a 2D prior: DDS with the slices coupled along z (DDS's 3D variant, reference section 1.1).

The ``Z`` slices of one volume are the batch. At every diffusion step the 2D prior denoises every slice (in
batches of ``network_batch`` slices), then ``admm_iters`` ADMM iterations solve

    ``min_x ||A x - y||^2 / 2 + rho_prox ||x - x0_hat||^2 / 2 + tv ||D_z x||_1``

(``rho_prox``: the noise-aware DDS weight, ``KrylovCG.weight``; ``D_z``: the forward difference between
neighbouring slices) by the splitting ``z = D_z x``:

- x-update: ``cg_iters`` CG iterations over the whole volume on
  ``(A^H A + rho_prox I + rho D_z^T D_z) x = A^H y + rho_prox x0_hat + rho D_z^T (z - u)``, from ``x0_hat``;
- ``z = soft(D_z x + u, tv / rho)``, ``u = u + D_z x - z``.

``z`` and ``u`` are kept from one diffusion step to the next (warm start, in the state, so checkpoints carry
them). DDS's code uses a circular difference, which couples the first slice with the last; here the difference
is not circular (``Z - 1`` differences), so the volume's two ends stay independent.
"""
from __future__ import annotations

import torch

from operators import cg

from .consistency import KrylovCG
from .ddim import DDIM, clip_to_range
from .problem import InverseProblem
from .state import State
from .transitions import dds_step

__all__ = ["DDS3D", "dds_3d", "difference_z", "difference_z_adjoint", "soft_threshold"]


def difference_z(x: torch.Tensor) -> torch.Tensor:
    """``D_z x``: differences of neighbouring slices, ``(Z, ...) -> (Z - 1, ...)``."""
    return x[1:] - x[:-1]


def difference_z_adjoint(d: torch.Tensor) -> torch.Tensor:
    """``D_z^T d``: ``(Z - 1, ...) -> (Z, ...)``."""
    zero = torch.zeros_like(d[:1])
    return torch.cat([zero, d]) - torch.cat([d, zero])


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """The proximal map of ``threshold * |.|`` per entry (complex entries shrink in magnitude)."""
    if threshold <= 0:
        return v
    mag = v.abs()
    return v * torch.clamp(1 - threshold / mag.clamp_min(1e-30), min=0)


class DDS3D(DDIM):
    """DDS whose data-consistency step couples the batch's slices (module docstring).

    Args:
        sigmas: descending grid ending with 0.
        eta: DDS noise mixing.
        cg_iters: CG iterations of each x-update.
        lam, sigma_data, gamma: the proximal weight to ``x0_hat``, as ``KrylovCG``.
        rho: the ADMM penalty (DDS: 10); 0 leaves the slices uncoupled (plain DDS).
        tv: weight of the total variation along z (DDS: 0.04 sparse view, 0.4 limited angle).
        admm_iters: ADMM iterations per diffusion step (DDS: 1).
        network_batch: slices per denoiser call (None: all at once).
        clip: clamp every Tweedie estimate to this range.
    """

    couples_batch = True  # the driver must not split the batch (the slices of one volume)

    def __init__(self, sigmas: torch.Tensor, eta: float = 0.85, cg_iters: int = 5, lam: float = 1.0,
                 sigma_data: float | None = None, gamma: float | None = None, rho: float = 10.0,
                 tv: float = 0.04, admm_iters: int = 1, network_batch: int | None = None,
                 clip: tuple[float, float] | None = None):
        super().__init__(sigmas, eta=eta, noise="dds", dc=KrylovCG(cg_iters, lam, sigma_data, gamma), clip=clip)
        if rho < 0 or tv < 0 or admm_iters < 1 or cg_iters < 1:
            raise ValueError(f"need rho >= 0, tv >= 0, admm_iters >= 1 and cg_iters >= 1, got {rho}, {tv}, "
                             f"{admm_iters}, {cg_iters}")
        if network_batch is not None and network_batch < 1:
            raise ValueError(f"network_batch must be at least 1, got {network_batch}")
        self.cg_iters, self.rho, self.tv, self.admm_iters = cg_iters, rho, tv, admm_iters
        self.network_batch = network_batch

    def _denoise(self, denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
        size = self.network_batch or x.shape[0]
        return clip_to_range(torch.cat([denoiser(x[i:i + size], sigma) for i in range(0, x.shape[0], size)]),
                             self.clip)

    def couple(self, x0_hat: torch.Tensor, sigma: float, problem: InverseProblem,
               z: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, z, u)`` after ``admm_iters`` ADMM iterations from ``x0_hat`` and the warm ``z``, ``u``."""
        prox = self.dc.weight(sigma, problem)
        if prox == float("inf"):
            return x0_hat, z, u
        A, rho = problem.A, (self.rho if x0_hat.shape[0] > 1 else 0.0)  # one slice: nothing to couple
        if not rho:  # uncoupled: every slice its own CG, exactly DDS
            return self.dc(x0_hat, x0_hat, sigma, problem), z, u

        def normal(v: torch.Tensor) -> torch.Tensor:  # the whole volume is one CG sample: (1, Z, ...)
            return (A.normal(v[0]) + rho * difference_z_adjoint(difference_z(v[0])))[None]

        x = x0_hat
        for _ in range(self.admm_iters):
            rhs = problem.adjoint_y + prox * x0_hat if prox else problem.adjoint_y
            rhs = rhs + rho * difference_z_adjoint(z - u)
            x = cg(normal, rhs[None], x0=x[None], iters=self.cg_iters, damping=prox)[0]
            dx = difference_z(x)
            z = soft_threshold(dx + u, self.tv / rho)
            u = u + dx - z
        return x, z, u

    def step(self, state: State, problem: InverseProblem | None, denoiser, generator: torch.Generator) -> State:
        problem = self._require(problem)
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x0_hat = self._denoise(denoiser, state.x, sigma)
        zeros = torch.zeros_like(state.x[1:])
        z, u = state.aux.get("admm_z", zeros), state.aux.get("admm_u", zeros)
        x0, z, u = self.couple(x0_hat, sigma, problem, z, u)
        eps = (state.x - x0_hat) / sigma
        x = x0 if sigma_next == 0 else dds_step(x0, eps, sigma_next, self.eta, generator)
        return state.advance(x, x0, admm_z=z, admm_u=u)


def dds_3d(steps: int = 50, sigmas: torch.Tensor | None = None, **options) -> DDS3D:
    """``DDS3D`` on the VP linear grid of ``steps`` points (or the given ``sigmas``); ``options`` as ``DDS3D``."""
    from .schedules import vp_linear

    return DDS3D(vp_linear(steps) if sigmas is None else sigmas, **options)
