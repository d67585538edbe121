"""DDIM with optional data consistency on the Tweedie estimate: DDS, DDIM + projection, unconditional DDIM."""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch

from medrecon.priors.base import Denoiser

from .consistency import KrylovCG, Projection
from .problem import InverseProblem
from .schedules import vp_linear
from .state import Sampler, State
from .transitions import ddim_step, dds_step, gaussian_like

__all__ = ["DDIM", "DataConsistency", "clip_to_range", "ddim_projection", "dds", "tweedie_with_dc"]


class DataConsistency(Protocol):
    """``dc(x0_hat, x, sigma, problem) -> x0'``; ``needs_grad``: ``x0_hat`` must carry autograd's graph to ``x``."""

    needs_grad: bool

    def __call__(
        self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
    ) -> torch.Tensor: ...


def clip_to_range(x: torch.Tensor, clip: tuple[float, float] | None) -> torch.Tensor:
    """``x`` clamped to ``clip = (lo, hi)`` (complex: the magnitude to ``hi``, phase kept); unchanged for None."""
    if clip is None:
        return x
    lo, hi = clip
    if x.is_complex():
        mag = x.abs()
        return torch.where(mag > hi, x * (hi / mag.clamp_min(1e-30)), x)
    return x.clamp(lo, hi)


def tweedie_with_dc(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigma: float,
    dc: DataConsistency | None,
    problem: InverseProblem | None,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0_hat, x0')``: the Tweedie estimate ``D(x, sigma)`` (clamped to ``clip``, the prior's data range, when
    given; zero outside the problem's ``support``) and its data-consistent update, both detached.

    Builds ``x0_hat`` with autograd enabled when ``dc.needs_grad``; ``x0' = x0_hat`` without ``dc``.
    """
    restrict = problem.restrict if problem is not None else (lambda v: v)
    if dc is None:
        x0 = restrict(clip_to_range(denoiser(x, sigma), clip))
        return x0, x0
    if problem is None:
        raise ValueError("data consistency needs an InverseProblem")
    if dc.needs_grad:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = restrict(clip_to_range(denoiser(xg, sigma), clip))
            x0_dc = dc(x0, xg, sigma, problem)
        return x0.detach(), x0_dc.detach()
    x0 = restrict(clip_to_range(denoiser(x, sigma), clip))
    return x0, dc(x0, x, sigma, problem)


class DDIM(Sampler):
    """One denoiser call per step: ``x0_hat = D(x, sigma)``, ``x0' = dc(x0_hat, x, sigma, problem)``, then
    re-noise ``x0'`` to ``sigma_next`` (the last step returns ``x0'``).

    Args:
        sigmas: descending grid ending with 0 (``schedules``).
        eta: stochasticity; with ``noise="ddim"`` DDIM's eta (0 deterministic, 1 ancestral), with
            ``noise="dds"`` DDS's mixing ``x_next = x0' + sigma_next (eta xi + sqrt(1 - eta^2) eps)``.
        noise: which re-noising rule.
        dc: data consistency on the Tweedie estimate (``KrylovCG``, ``Projection``, ``LikelihoodGradient``) or
            None (unconditional DDIM).
        eps: the noise direction kept when re-noising: ``"prior"`` is ``(x - x0_hat) / sigma`` from before data
            consistency (DDS), ``"posterior"`` is ``(x - x0') / sigma``, which makes the step a discretisation
            of the posterior's reverse process (``(x0' - x) / sigma^2`` is then its score).
        init_var: see ``Sampler``.
        clip: clamp every Tweedie estimate to this range (the prior's data range; complex: the magnitude), as
            DPS clips to [-1, 1]; None leaves it.
        x_init: partial diffusion from an estimate (Come-Closer-Diffuse-Faster, Chung et al. 2022): the run
            starts at ``x_init(problem) + sigma_0 xi`` (``(B, *image)`` in prior units, e.g. a TV
            reconstruction; ``sigma_0`` the grid's first level, below the prior's maximum) instead of
            ``N(0, (sigma_0^2 + init_var) I)``. None: from noise.
    """

    def __init__(
        self,
        sigmas: torch.Tensor,
        eta: float = 0.0,
        noise: Literal["ddim", "dds"] = "ddim",
        dc: DataConsistency | None = None,
        eps: Literal["prior", "posterior"] = "prior",
        init_var: float = 1.0,
        clip: tuple[float, float] | None = None,
        x_init: Callable[[InverseProblem], torch.Tensor] | None = None,
    ):
        super().__init__(sigmas, init_var)
        if noise not in ("ddim", "dds"):
            raise ValueError(f"noise must be 'ddim' or 'dds', got {noise!r}")
        if eps not in ("prior", "posterior"):
            raise ValueError(f"eps must be 'prior' or 'posterior', got {eps!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError("eta must lie in [0, 1]")
        self.eta, self.noise, self.dc, self.eps, self.clip, self.x_init = eta, noise, dc, eps, clip, x_init
        self.needs_problem = dc is not None or x_init is not None
        self.requires_grad = bool(getattr(dc, "needs_grad", False))

    def init(
        self,
        problem: InverseProblem | None,
        denoiser: Denoiser,
        generator: torch.Generator,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> State:
        if self.x_init is None:
            return super().init(problem, denoiser, generator, shape, dtype, device)
        problem = self._require(problem)
        template = self._template(problem, shape, dtype, device)
        with torch.no_grad():
            start = self.x_init(problem)
        if tuple(start.shape) != tuple(template.shape):
            raise ValueError(f"x_init gave shape {tuple(start.shape)}, the sampler needs {tuple(template.shape)}")
        x = start.to(template) + self.sigmas[0] * gaussian_like(template, generator)
        return State(x=x, x0=torch.zeros_like(x), log_weights=x.new_zeros(x.shape[0], dtype=x.real.dtype))

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:
        sigma, sigma_next = self.sigmas[state.step], self.sigmas[state.step + 1]
        x0_hat, x0 = tweedie_with_dc(denoiser, state.x, sigma, self.dc, problem, self.clip)
        eps = (state.x - (x0 if self.eps == "posterior" else x0_hat)) / sigma
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
    gamma: float | None = None,
    lam: float = 1.0,
    sigma_data: float | None = None,
    tol: float | None = None,
    sigmas: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    x_init: Callable[[InverseProblem], torch.Tensor] | None = None,
) -> DDIM:
    """DDS: VP linear grid of ``steps`` points (or the given ``sigmas``), DDS noise ``eta``, ``cg_iters`` CG
    iterations on ``(A^H A + rho I) x = A^H y + rho x0_hat`` from ``x0_hat``.

    ``rho`` follows the measurement noise and the current noise level (``consistency.data_weight`` with ``lam``
    and ``sigma_data``; noiseless data give the normal equations, early stopping as the regulariser) unless
    ``gamma`` fixes it (the paper's noisy-MRI setting is ``gamma = 1``). ``clip``, ``x_init``: see ``DDIM``."""
    grid = vp_linear(steps) if sigmas is None else sigmas
    return DDIM(grid, eta=eta, noise="dds", dc=KrylovCG(cg_iters, lam, sigma_data, gamma, tol), clip=clip,
                x_init=x_init)


def ddim_projection(
    steps: int = 50,
    eta: float = 0.85,
    iters: int = 20,
    tol: float | None = 1e-6,
    lam: float = 1.0,
    sigma_data: float | None = None,
    sigmas: torch.Tensor | None = None,
) -> DDIM:
    """DDIM with the proximal step solved to ``tol`` on every Tweedie estimate (for noiseless data the hard
    projection onto ``A x = y``, score-MRI-style data consistency inside DDIM)."""
    grid = vp_linear(steps) if sigmas is None else sigmas
    return DDIM(grid, eta=eta, noise="dds", dc=Projection(iters, tol, lam, sigma_data))
