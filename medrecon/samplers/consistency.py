"""Data-consistency steps acting on an image estimate (the Tweedie estimate for DDS, the iterate for score-MRI).

Each step is a small callable object ``dc(x, problem) -> x'``; all are batched per sample and work with any
``LinearOperator`` (complex MRI, real CT, dense matrices).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators import cg, inner

from .problem import InverseProblem

__all__ = ["KrylovCG", "Projection", "residual_norm_gradient"]


@dataclass(frozen=True)
class KrylovCG:
    """DDS's Krylov step: ``iters`` CG iterations on ``(A^H A + gamma I) x = A^H y + gamma x_hat`` from ``x_hat``.

    ``gamma = 0`` is the noiseless variant (CG on the normal equations ``A^H A x = A^H y`` started at ``x_hat``,
    early stopping acting as the regulariser). ``tol`` stops early once every sample's residual is below
    ``tol * ||rhs||``.
    """

    iters: int = 5
    gamma: float = 1.0
    tol: float | None = None

    def __call__(self, x_hat: torch.Tensor, problem: InverseProblem) -> torch.Tensor:
        rhs = problem.adjoint_y + self.gamma * x_hat if self.gamma else problem.adjoint_y
        return cg(problem.A.normal, rhs, x0=x_hat, iters=self.iters, damping=self.gamma, tol=self.tol)


@dataclass(frozen=True)
class Projection:
    """Orthogonal projection onto ``{x : A x = target}`` (``target = y`` unless given):
    ``x + A^H u`` with ``u`` solving ``A A^H u = target - A x`` by CG in measurement space.

    For a masked orthonormal Fourier operator ``A A^H`` is the identity on the sampled entries, CG stops after
    one iteration and the result is exactly the hard replacement of the measured k-space,
    ``F^H((1 - M) F x + y)``. For other operators (multi-coil MRI, CT) it is the exact projection up to the CG
    tolerance, or an approximate one after ``iters`` iterations.
    """

    iters: int = 20
    tol: float | None = 1e-6

    def __call__(
        self, x: torch.Tensor, problem: InverseProblem, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        A = problem.A
        goal = problem.y if target is None else target
        r = goal - A(x)
        u = cg(lambda v: A(A.adjoint(v)), r, iters=self.iters, tol=self.tol)
        return x + A.adjoint(u)


def residual_norm_gradient(
    x: torch.Tensor, x0: torch.Tensor, problem: InverseProblem
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPS's guidance: ``grad_x sum_b ||y_b - A D(x_b)||`` (the unsquared norm) and the norms ``(B,)``.

    ``x0 = D(x, sigma)`` must have been computed from ``x`` with autograd enabled.
    """
    r = problem.residual(x0)
    norms = inner(r, r).clamp_min(1e-30).sqrt()
    (grad,) = torch.autograd.grad(norms.sum(), x)
    return grad, norms.detach()
