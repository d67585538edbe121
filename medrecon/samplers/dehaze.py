"""Joint posterior sampling of two sources from one measurement (Stevens et al., "Dehazing ultrasound using
diffusion models", Algorithm 1), built from the DDIM loop: a product prior over ``stack([tissue, haze])``
(``medrecon.priors.stacked.StackedDenoiser``), the haze model ``y = x + gamma h`` (``SourceMixture``) and a
data-consistency step on the companded signals.

Both priors work on mu-law companded RF, ``C(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)``. Each step takes the
Tweedie estimates of both sources, descends the paper's objective

    ``L(x, h) = || C(y) - C(C^-1(x) + gamma C^-1(h)) ||^2 / 2``

with steps ``lam`` (tissue) and ``kappa`` (haze), and re-noises both with the ancestral DDIM transition. The run
starts from the measurement (Come-Closer-Diffuse-Faster): ``x = h = C(y) + sigma_0 xi``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from operators.ultrasound import mu_law_compress, mu_law_expand

from .ddim import DDIM, DataConsistency
from .problem import InverseProblem
from .schedules import karras

__all__ = ["CompandedMixtureGradient", "JointDehazing", "joint_dehazing"]


@dataclass(frozen=True)
class CompandedMixtureGradient:
    """``iters`` gradient steps on ``|| C(y) - C(A C^-1(z)) ||^2 / 2`` from the Tweedie estimate ``z`` of the
    stacked sources ``(B, K, H, W)`` (``A = problem.A``, a ``SourceMixture``), with one step size per source
    (``steps``), clamped to ``[-1, 1]``. ``mu = None`` drops the companding: Landweber steps on
    ``||y - A z||^2 / 2``. Differentiates the measurement model only, not the prior."""

    steps: tuple[float, ...] = (0.5, 0.5)
    iters: int = 1
    mu: float | None = 255.0
    needs_grad = False

    def loss(self, z: torch.Tensor, problem: InverseProblem) -> torch.Tensor:
        """The objective per sample ``(B,)``."""
        if self.mu is None:
            r = problem.residual(z)
        else:
            r = mu_law_compress(problem.y, self.mu) - mu_law_compress(problem.A(mu_law_expand(z, self.mu)), self.mu)
        return 0.5 * r.pow(2).flatten(1).sum(1)

    def __call__(self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
                 ) -> torch.Tensor:
        step = torch.tensor(self.steps, dtype=x0_hat.dtype, device=x0_hat.device).reshape(-1, 1, 1)
        z = x0_hat.detach()
        for _ in range(self.iters):
            with torch.enable_grad():
                zg = z.requires_grad_(True)
                (grad,) = torch.autograd.grad(self.loss(zg, problem).sum(), zg)
            z = (z.detach() - step * grad).clamp(-1.0, 1.0)
        return z


class JointDehazing(DDIM):
    """DDIM over stacked sources ``(B, K, H, W)`` with a data-consistency step (default
    ``CompandedMixtureGradient``) and, with ``start = "measurement"``, every source started at ``C(y) + sigma_0
    xi`` (``C`` the mu-law companding of ``dc.mu``; the identity for ``mu = None``); ``start = "noise"`` draws
    ``N(0, (sigma_0^2 + init_var) I)`` like every other sampler. ``result`` is the stacked companded sources."""

    def __init__(self, sigmas: torch.Tensor, dc: DataConsistency | None = None, eta: float = 1.0,
                 noise: Literal["ddim", "dds"] = "ddim", start: Literal["measurement", "noise"] = "measurement",
                 init_var: float = 1.0):
        if start not in ("measurement", "noise"):
            raise ValueError(f"start must be 'measurement' or 'noise', got {start!r}")
        dc = dc if dc is not None else CompandedMixtureGradient()
        super().__init__(sigmas, eta=eta, noise=noise, dc=dc, eps="posterior", init_var=init_var,
                         clip=(-1.0, 1.0) if start == "measurement" else None,
                         x_init=self._companded_measurement if start == "measurement" else None)
        self.start = start

    def _companded_measurement(self, problem: InverseProblem) -> torch.Tensor:
        """``C(y)`` for every stacked source, ``(B, K, H, W)``."""
        mu = getattr(self.dc, "mu", None)
        y = problem.y if mu is None else mu_law_compress(problem.y, mu)
        return y.unsqueeze(1).expand_as(problem.adjoint_y)


def joint_dehazing(steps: int = 50, sigma_start: float = 0.5, sigma_min: float = 0.002,
                   lam: float = 0.5, kappa: float = 0.5, iters: int = 1, mu: float | None = 255.0,
                   eta: float = 1.0) -> JointDehazing:
    """Algorithm 1 of the dehazing paper in the VE variable: a Karras grid of ``steps`` from ``sigma_start`` (the
    measurement-started partial diffusion, the paper's ``tau = 0.8``), step sizes ``lam`` / ``kappa`` for tissue
    / haze, ancestral re-noising (``eta = 1``, the Euler-Maruyama step's kernel)."""
    return JointDehazing(karras(steps, sigma_min, sigma_start), CompandedMixtureGradient((lam, kappa), iters, mu),
                         eta=eta)
