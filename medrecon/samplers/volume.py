"""Volumes from a 2D prior: DDS with the slices coupled along z (DDS's 3D variant, reference section 1.1) and
DiffusionMBIR (the VE predictor-corrector followed by the same coupling, reference section 2).

DDS-3D: the ``Z`` slices of one volume are the batch. At every diffusion step the 2D prior denoises every slice (in
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

DiffusionMBIR: every step is one step of ``PredictorCorrector`` on the prior's score alone (no data
consistency inside the score), then the same ADMM iterations with ``rho_prox = 0`` and ``cg_iters`` (1 in the
reference) CG iterations started at the noisy iterate ``x`` itself, not at a Tweedie estimate. Optionally a last
normalised back-projection step ``x + A^H (y - A x) / (A^H A 1)`` (the reference's CT ``final_consistency``).
The reference runs the predictor before the corrector at each level; ``PredictorCorrector`` runs the corrector
first (score-SDE's order), which only regroups the same sequence of moves.

``admm_tv`` is the ADMM both samplers share; with ``rho = 0`` it is each slice's own CG (no coupling).
Optionally (``tv_xy > 0``, not in the references) it adds anisotropic TV within each slice,
``tv_xy (||D_y x||_1 + ||D_x x||_1)``, split the same way (one more ``z``, ``u`` pair per direction): the ADMM
then solves a 3D-TV-regularised proximal problem around the prior's estimate.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from operators import cg

from .consistency import KrylovCG
from .ddim import DDIM, clip_to_range
from .pc import PredictorCorrector
from .problem import InverseProblem
from .state import State
from .transitions import dds_step

__all__ = ["DDS3D", "SPLITS", "DiffusionMBIR", "admm_tv", "dds_3d", "denoise_in_batches", "difference",
           "difference_adjoint", "difference_z", "difference_z_adjoint", "diffusion_mbir",
           "normalised_backprojection_step", "soft_threshold"]


def difference(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Forward differences of neighbours along ``dim`` (not circular): ``n`` entries -> ``n - 1``."""
    n = x.shape[dim]
    return x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1)


def difference_adjoint(d: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The adjoint of ``difference`` along ``dim``: ``n - 1`` entries -> ``n``."""
    zero = torch.zeros_like(d.narrow(dim, 0, 1))
    return torch.cat([zero, d], dim) - torch.cat([d, zero], dim)


def difference_z(x: torch.Tensor) -> torch.Tensor:
    """``D_z x``: differences of neighbouring slices, ``(Z, ...) -> (Z - 1, ...)``."""
    return difference(x, 0)


def difference_z_adjoint(d: torch.Tensor) -> torch.Tensor:
    """``D_z^T d``: ``(Z - 1, ...) -> (Z, ...)``."""
    return difference_adjoint(d, 0)


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """The proximal map of ``threshold * |.|`` per entry (complex entries shrink in magnitude)."""
    if threshold <= 0:
        return v
    mag = v.abs()
    return v * torch.clamp(1 - threshold / mag.clamp_min(1e-30), min=0)


def denoise_in_batches(denoiser, x: torch.Tensor, sigma: float, size: int | None) -> torch.Tensor:
    """``denoiser(x, sigma)`` over the slices ``x`` ``(Z, ...)`` in calls of at most ``size`` slices (None: one
    call)."""
    size = size or x.shape[0]
    return torch.cat([denoiser(x[i:i + size], sigma) for i in range(0, x.shape[0], size)])


SPLITS = (("admm_z", "admm_u", 0), ("admm_zy", "admm_uy", 1), ("admm_zx", "admm_ux", 2))  # names and dims


def admm_tv(start: torch.Tensor, problem: InverseProblem, duals: dict[str, torch.Tensor], *, rho: float,
            tv: float, admm_iters: int, cg_iters: int, tv_xy: float = 0.0, prox: float = 0.0,
            anchor: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(x, duals)`` after ``admm_iters`` ADMM iterations on
    ``min_x ||A x - y||^2 / 2 + prox ||x - anchor||^2 / 2 + tv ||D_z x||_1 + tv_xy (||D_y x||_1 + ||D_x x||_1)``
    (module docstring; the in-plane term only when ``tv_xy > 0``, for slices ``(Z, H, W)``).

    ``start`` ``(Z, ...)``: the first CG iterate of every x-update and, unless given, the ``anchor``. ``duals``:
    the warm split variables and scaled duals by name (``SPLITS``: ``admm_z``, ``admm_u`` ``(Z - 1, ...)``;
    ``admm_zy``, ``admm_uy`` ``(Z, H - 1, W)``; ``admm_zx``, ``admm_ux`` ``(Z, H, W - 1)``); missing ones start
    at 0. With ``rho = 0``, or one slice and no in-plane term: ``cg_iters`` CG iterations per slice on the
    proximal problem without TV, and ``duals`` unchanged.
    """
    anchor = start if anchor is None else anchor
    A = problem.A
    rhs0 = problem.adjoint_y + prox * anchor if prox else problem.adjoint_y
    if not rho or (start.shape[0] < 2 and not tv_xy):  # uncoupled: every slice its own CG
        return cg(A.normal, rhs0, x0=start, iters=cg_iters, damping=prox), duals
    terms = [(z, u, dim, weight) for (z, u, dim), weight in zip(SPLITS, (tv, tv_xy, tv_xy)) if dim == 0 or tv_xy]

    def normal(v: torch.Tensor) -> torch.Tensor:  # the whole volume is one CG sample: (1, Z, ...)
        out = A.normal(v[0])
        for _, _, dim, _ in terms:
            out = out + rho * difference_adjoint(difference(v[0], dim), dim)
        return out[None]

    duals = dict(duals)
    for zname, uname, dim, _ in terms:
        zeros = torch.zeros_like(difference(start, dim))
        duals.setdefault(zname, zeros)
        duals.setdefault(uname, zeros)
    x = start
    for _ in range(admm_iters):
        rhs = rhs0
        for zname, uname, dim, _ in terms:
            rhs = rhs + rho * difference_adjoint(duals[zname] - duals[uname], dim)
        x = cg(normal, rhs[None], x0=x[None], iters=cg_iters, damping=prox)[0]
        for zname, uname, dim, weight in terms:
            dx = difference(x, dim)
            z = soft_threshold(dx + duals[uname], weight / rho)
            duals[zname], duals[uname] = z, duals[uname] + dx - z
    return x, duals


def _duals(state: State) -> dict[str, torch.Tensor]:
    """The ADMM variables kept in ``state.aux`` (``SPLITS``)."""
    return {name: state.aux[name] for split in SPLITS for name in split[:2] if name in state.aux}


def _check_coupling(rho: float, tv: float, tv_xy: float, admm_iters: int, cg_iters: int,
                    network_batch: int | None) -> None:
    if rho < 0 or tv < 0 or tv_xy < 0 or admm_iters < 1 or cg_iters < 1:
        raise ValueError(f"need rho, tv, tv_xy >= 0 and admm_iters, cg_iters >= 1, got {rho}, {tv}, {tv_xy}, "
                         f"{admm_iters}, {cg_iters}")
    if network_batch is not None and network_batch < 1:
        raise ValueError(f"network_batch must be at least 1, got {network_batch}")


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
        tv_xy: weight of the anisotropic TV within each slice (0: none, DDS's 3D variant as published).
    """

    couples_batch = True  # the driver must not split the batch (the slices of one volume)

    def __init__(self, sigmas: torch.Tensor, eta: float = 0.85, cg_iters: int = 5, lam: float = 1.0,
                 sigma_data: float | None = None, gamma: float | None = None, rho: float = 10.0,
                 tv: float = 0.04, admm_iters: int = 1, network_batch: int | None = None,
                 clip: tuple[float, float] | None = None, tv_xy: float = 0.0):
        super().__init__(sigmas, eta=eta, noise="dds", dc=KrylovCG(cg_iters, lam, sigma_data, gamma), clip=clip)
        _check_coupling(rho, tv, tv_xy, admm_iters, cg_iters, network_batch)
        self.cg_iters, self.rho, self.tv, self.tv_xy, self.admm_iters = cg_iters, rho, tv, tv_xy, admm_iters
        self.network_batch = network_batch

    def _denoise(self, denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return clip_to_range(denoise_in_batches(denoiser, x, sigma, self.network_batch), self.clip)

    def couple(self, x0_hat: torch.Tensor, sigma: float, problem: InverseProblem,
               duals: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(x, duals)`` after ``admm_iters`` ADMM iterations from ``x0_hat`` and the warm ``duals``
        (``admm_tv``)."""
        prox = self.dc.weight(sigma, problem)
        if prox == float("inf"):
            return x0_hat, duals
        return admm_tv(x0_hat, problem, duals, rho=self.rho, tv=self.tv, tv_xy=self.tv_xy,
                       admm_iters=self.admm_iters, cg_iters=self.cg_iters, prox=prox)

    def step(self, state: State, problem: InverseProblem | None, denoiser, generator: torch.Generator) -> State:
        problem = self._require(problem)
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x0_hat = self._denoise(denoiser, state.x, sigma)
        x0, duals = self.couple(x0_hat, sigma, problem, _duals(state))
        eps = (state.x - x0_hat) / sigma
        x = x0 if sigma_next == 0 else dds_step(x0, eps, sigma_next, self.eta, generator)
        return state.advance(x, x0, **duals)


def dds_3d(steps: int = 50, sigmas: torch.Tensor | None = None, **options) -> DDS3D:
    """``DDS3D`` on the VP linear grid of ``steps`` points (or the given ``sigmas``); ``options`` as ``DDS3D``."""
    from .schedules import vp_linear

    return DDS3D(vp_linear(steps) if sigmas is None else sigmas, **options)


class DiffusionMBIR(PredictorCorrector):
    """DiffusionMBIR: a prior-only VE predictor-corrector step on every slice, then ADMM with TV along z on the
    noisy iterate (module docstring).

    Args:
        sigmas: descending grid ending with 0 (the reference: ``log_uniform(2000, 0.01, 378)``).
        snr: Langevin corrector signal-to-noise ratio (0.16).
        corrector_steps: Langevin steps per level (1).
        rho: the ADMM penalty (10); 0 leaves the slices uncoupled (each slice ``cg_iters`` CG iterations on
            ``A^H A x = A^H y`` from ``x``).
        tv: weight of the total variation along z (0.04 sparse view, in the reference's units).
        admm_iters: ADMM iterations per step (1).
        cg_iters: CG iterations of each x-update (1).
        network_batch: slices per denoiser call (None: all at once; the reference: 12).
        final_consistency: end with one normalised back-projection step.
        tv_xy: weight of the anisotropic TV within each slice (0: none, as the reference's CT sampler; its
            ``ADMM_TV_all_vol`` variant regularises x, y and z).
    """

    couples_batch = True  # the driver must not split the batch (the slices of one volume)

    def __init__(self, sigmas: torch.Tensor, snr: float = 0.16, corrector_steps: int = 1, rho: float = 10.0,
                 tv: float = 0.04, admm_iters: int = 1, cg_iters: int = 1, network_batch: int | None = None,
                 final_consistency: bool = True, tv_xy: float = 0.0):
        super().__init__(sigmas, snr=snr, corrector_steps=corrector_steps, dc=None)
        _check_coupling(rho, tv, tv_xy, admm_iters, cg_iters, network_batch)
        self.rho, self.tv, self.tv_xy, self.admm_iters, self.cg_iters = rho, tv, tv_xy, admm_iters, cg_iters
        self.network_batch, self.final_consistency = network_batch, final_consistency
        self.needs_problem = True

    def step(self, state: State, problem: InverseProblem | None, denoiser, generator: torch.Generator) -> State:
        problem = self._require(problem)
        batched = lambda x, sigma: denoise_in_batches(denoiser, x, sigma, self.network_batch)
        moved = super().step(state, None, batched, generator)
        x, duals = admm_tv(moved.x, problem, _duals(state), rho=self.rho, tv=self.tv, tv_xy=self.tv_xy,
                           admm_iters=self.admm_iters, cg_iters=self.cg_iters)
        last = moved.step == self.num_steps
        if last and self.final_consistency:
            x = normalised_backprojection_step(x, problem)
        return replace(moved, x=x, x0=x if last else moved.x0, aux={**moved.aux, **duals})


def normalised_backprojection_step(x: torch.Tensor, problem: InverseProblem) -> torch.Tensor:
    """``x + A^H (y - A x) / (A^H A 1)`` (0 where ``A^H A 1`` is 0), slice by slice; ``x`` ``(Z, ...)``."""
    A = problem.A
    weight = A.normal(torch.ones_like(x))
    safe = torch.where(weight > 0, weight, torch.ones_like(weight))
    return x + torch.where(weight > 0, (problem.adjoint_y - A.normal(x)) / safe, torch.zeros_like(x))


def diffusion_mbir(steps: int = 2000, sigmas: torch.Tensor | None = None, **options) -> DiffusionMBIR:
    """``DiffusionMBIR`` on the reference's VE grid (``log_uniform(steps, 0.01, 378)``) or the given ``sigmas``;
    ``options`` as ``DiffusionMBIR``."""
    from .schedules import log_uniform

    return DiffusionMBIR(log_uniform(steps, 0.01, 378.0) if sigmas is None else sigmas, **options)
