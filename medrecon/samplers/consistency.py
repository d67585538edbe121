"""Data-consistency steps: from the Tweedie estimate ``x0_hat = D(x, sigma)`` to an estimate of ``E[x0 | x, y]``.

Every step is a callable ``dc(x0_hat, x, sigma, problem) -> x0'`` with a ``needs_grad`` attribute (True when it
differentiates ``x0_hat`` with respect to ``x``, i.e. through the prior; the sampler then builds ``x0_hat`` with
autograd enabled). All are batched per sample and work with any ``LinearOperator`` (complex MRI, real CT, dense).

**The noise model.** Given ``x`` at noise level ``sigma``, the clean image is approximated as
``x0 | x ~ N(x0_hat, r^2 I)`` with ``r^2 = x0_variance(sigma, sigma_data) / lam``: the exact posterior variance
under a ``N(., sigma_data^2 I)`` prior (``sigma^2`` when ``sigma_data`` is None, DiffPIR's choice). Combined with
the likelihood ``y = A x0 + sigma_y n`` this gives the proximal problem

    ``x0' = argmin ||y - A x||^2 / (2 sigma_y^2) + ||x - x0_hat||^2 / (2 r^2)``,
    ``(A^H A + rho I) x0' = A^H y + rho x0_hat``,   ``rho = sigma_y^2 / r^2 = lam sigma_y^2 / x0_variance``,

i.e. DiffPIR's ``rho_t = lambda sigma_y^2 / sigma_t^2``. Its ``sigma_y -> 0`` limit is the projection of
``x0_hat`` onto ``{A x = y}``; it is exact (``x0' = E[x0 | x, y]``) for an isotropic Gaussian prior with that
``sigma_data``. ``sigma_y`` is ``InverseProblem.sigma_y``, in the units of ``y`` per real component.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from operators import cg, inner

from .problem import InverseProblem

__all__ = [
    "KrylovCG",
    "LikelihoodGradient",
    "Projection",
    "data_weight",
    "residual_norm_gradient",
    "x0_variance",
]


def x0_variance(sigma: float, sigma_data: float | None = None) -> float:
    """Variance per real component of ``x0`` given ``x = x0 + sigma eps`` under a ``N(., sigma_data^2 I)``
    prior: ``sigma^2 sigma_data^2 / (sigma^2 + sigma_data^2)``; ``sigma^2`` when ``sigma_data`` is None."""
    s2 = float(sigma) ** 2
    if sigma_data is None:
        return s2
    d2 = float(sigma_data) ** 2
    return s2 * d2 / (s2 + d2)


def data_weight(sigma: float, sigma_y: float, lam: float = 1.0, sigma_data: float | None = None) -> float:
    """The proximal weight ``rho = lam sigma_y^2 / x0_variance(sigma, sigma_data)`` (0 for noiseless data)."""
    if sigma_y == 0:
        return 0.0
    var = x0_variance(sigma, sigma_data)
    return float("inf") if var == 0 else lam * float(sigma_y) ** 2 / var


def _check(lam: float, sigma_data: float | None) -> None:
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    if sigma_data is not None and not sigma_data > 0:
        raise ValueError(f"sigma_data must be positive or None, got {sigma_data}")


@dataclass(frozen=True)
class KrylovCG:
    """DDS's Krylov step: ``iters`` CG iterations on ``(A^H A + rho I) x = A^H y + rho x0_hat`` from ``x0_hat``.

    ``rho`` follows the noise (``data_weight(sigma, problem.sigma_y, lam, sigma_data)``) unless ``gamma`` fixes
    it (DDS's published setting: ``gamma = 1``; ``gamma = 0`` the noiseless normal equations). With
    ``rho = 0`` early stopping acts as the regulariser. ``tol`` stops early once every sample's residual is
    below ``tol * ||rhs||``.
    """

    iters: int = 5
    lam: float = 1.0
    sigma_data: float | None = None
    gamma: float | None = None
    tol: float | None = None
    needs_grad = False

    def __post_init__(self):
        _check(self.lam, self.sigma_data)
        if self.gamma is not None and self.gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {self.gamma}")

    def weight(self, sigma: float, problem: InverseProblem) -> float:
        """The proximal weight ``rho`` used at noise level ``sigma``."""
        if self.gamma is not None:
            return float(self.gamma)
        return data_weight(sigma, problem.sigma_y, self.lam, self.sigma_data)

    def __call__(
        self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
    ) -> torch.Tensor:
        rho = self.weight(sigma, problem)
        if rho == float("inf"):
            return x0_hat
        rhs = problem.adjoint_y + rho * x0_hat if rho else problem.adjoint_y
        return cg(problem.A.normal, rhs, x0=x0_hat, iters=self.iters, damping=rho, tol=self.tol)


@dataclass(frozen=True)
class Projection:
    """The same proximal step solved in measurement space: ``x0_hat + A^H u`` with ``u`` solving
    ``(A A^H + rho I) u = y - A x0_hat`` by CG (push-through identity; ``rho`` as in ``KrylovCG``).

    For noiseless data (``rho = 0``) it is the orthogonal projection onto ``{x : A x = y}``. For a masked
    orthonormal Fourier operator ``A A^H`` is the identity on the sampled entries, CG stops after one iteration
    and the result is exactly the replacement of the measured k-space, ``F^H((1 - M) F x + M (y + rho F x)/(1 +
    rho))``. For other operators (multi-coil MRI, CT) it is exact up to the CG tolerance.
    """

    iters: int = 20
    tol: float | None = 1e-6
    lam: float = 1.0
    sigma_data: float | None = None
    needs_grad = False

    def __post_init__(self):
        _check(self.lam, self.sigma_data)

    def __call__(
        self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
    ) -> torch.Tensor:
        rho = data_weight(sigma, problem.sigma_y, self.lam, self.sigma_data)
        return self.solve(x0_hat, problem, problem.y, rho)

    def solve(
        self, x: torch.Tensor, problem: InverseProblem, target: torch.Tensor, rho: float = 0.0
    ) -> torch.Tensor:
        """``x + A^H (A A^H + rho I)^{-1} (target - A x)`` (``rho = inf`` returns ``x``)."""
        if rho == float("inf"):
            return x
        A = problem.A
        r = target - A(x)
        u = cg(lambda v: A(A.adjoint(v)), r, iters=self.iters, tol=self.tol, damping=rho)
        return x + A.adjoint(u)


@dataclass(frozen=True)
class LikelihoodGradient:
    """A step along the gradient of the Gaussian-approximated log-likelihood, taken through the prior:

        ``x0' = x0_hat + zeta sigma^2 grad_x log N(y; A x0_hat(x), sigma_y^2 I + r^2 A A^H)``
        ``     = x0_hat + zeta sigma^2 J^H A^H u``,  ``(r^2 A A^H + sigma_y^2 I) u = y - A x0_hat``,

    with ``J = d x0_hat / d x`` (a vector-Jacobian product through the network) and ``u`` by ``cg_iters`` CG
    iterations in measurement space. ``sigma^2 grad log p(y | x)`` is what the likelihood adds to Tweedie's
    estimate (``E[x0 | x, y] = x + sigma^2 grad log p(x | y)``), so with ``zeta = 1`` the step is exact for a
    Gaussian prior with isotropic ``Cov[x0 | x] = r^2 I`` and any ``A`` (the pseudo-inverse guidance of
    Song et al. 2023 with DPS's gradient). ``zeta`` scales it (DPS's step size).
    """

    zeta: float = 1.0
    lam: float = 1.0
    sigma_data: float | None = None
    cg_iters: int = 10
    tol: float | None = 1e-6
    needs_grad = True

    def __post_init__(self):
        _check(self.lam, self.sigma_data)

    def direction(
        self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
    ) -> torch.Tensor:
        """``sigma^2 J^H A^H u`` (detached), the full-size step; ``x0_hat`` must carry the graph to ``x``."""
        A = problem.A
        r2 = x0_variance(sigma, self.sigma_data) / self.lam
        s2y = float(problem.sigma_y) ** 2
        with torch.no_grad():
            residual = problem.residual(x0_hat.detach())
            u = cg(lambda v: r2 * A(A.adjoint(v)), residual, iters=self.cg_iters, tol=self.tol, damping=s2y)
            v = A.adjoint(u)
        (grad,) = torch.autograd.grad(inner(v, x0_hat).real.sum(), x)
        return float(sigma) ** 2 * grad

    def __call__(
        self, x0_hat: torch.Tensor, x: torch.Tensor, sigma: float, problem: InverseProblem
    ) -> torch.Tensor:
        return x0_hat.detach() + self.zeta * self.direction(x0_hat, x, sigma, problem)


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
