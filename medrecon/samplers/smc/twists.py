"""Twisting functions of the SMC samplers: ``psi_sigma(x) ~ p(y | x_sigma = x)``, the weight a particle at noise
level ``sigma`` carries towards the measurement. Both are Gaussian in measurement space,

    ``log psi_sigma(x) = -(y - A z)^H S_sigma^{-1} (y - A z) / 2``,   ``S_sigma = sigma_y^2 I + v(sigma) A A^H``,

(up to a constant that does not depend on ``x``), and both equal the likelihood ``p(y | x)`` at ``sigma = 0``,
so the last SMC target is the posterior. They differ in ``z`` and ``v``:

- ``MeasurementTwist``: ``z = x``, ``v = kappa sigma^2`` (the noisy particle itself, no network:
  ``x0 | x ~ N(x, kappa sigma^2 I)``; ``kappa = 0`` is AFDPS's tilt ``exp(-mu_y(x))`` by the plain likelihood).
  Gaussian in ``x``, so a proposal can be conditioned on it exactly (``conjugate``).
- ``TweedieTwist``: ``z = D(x, sigma)``, ``v = x0_variance(sigma, sigma_data) / lam`` (TDS / DPS: the Tweedie
  estimate with its variance; exact for a Gaussian prior with that ``sigma_data``). Its gradient is
  ``J^H A^H S^{-1} (y - A D(x))`` with ``J = dD/dx``: a vector-Jacobian product through the network
  (``jacobian="network"``), or Tweedie's second-order identity ``J = Cov[x0 | x] / sigma^2`` with the isotropic
  ``Cov = v I`` (``jacobian="isotropic"``: no back-propagation; exact for an isotropic Gaussian prior). The
  gradient only shapes the proposal; the SMC weights stay exact either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from operators import inner

from ..consistency import x0_variance
from ..problem import InverseProblem

__all__ = ["MeasurementTwist", "TweedieTwist", "Twist"]


@dataclass(frozen=True)
class Twist:
    """Common options: CG iterations and tolerance of the measurement-space solves with ``S_sigma``."""

    cg_iters: int = 50
    tol: float | None = 1e-8

    gaussian = False  # Gaussian in x (a proposal can be conditioned on it exactly)
    network_gradient = False  # its gradient goes through the denoiser

    def extra_var(self, sigma: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(
        self, x: torch.Tensor, x0: torch.Tensor, sigma: float, problem: InverseProblem, gradient: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover - abstract
        """``(log psi_sigma(x), grad_x log psi_sigma(x) or None)``; shapes ``x.shape[:2]`` and ``x.shape``.
        ``x0 = D(x, sigma)`` (carrying autograd's graph to ``x`` when the gradient goes through it)."""
        raise NotImplementedError

    def _solve(self, problem: InverseProblem, z: torch.Tensor, sigma: float):
        nb = problem.batch_dims(z)
        r = problem.residual(z)
        u = problem.whiten(r, self.extra_var(sigma), nb, self.cg_iters, self.tol)
        return r, u, nb


@dataclass(frozen=True)
class MeasurementTwist(Twist):
    """``psi_sigma(x) = N(y; A x, sigma_y^2 I + kappa sigma^2 A A^H)``; no network evaluation."""

    kappa: float = 1.0
    gaussian = True

    def __post_init__(self):
        if not self.kappa >= 0:
            raise ValueError(f"kappa must be non-negative, got {self.kappa}")

    def extra_var(self, sigma: float) -> float:
        return self.kappa * float(sigma) ** 2

    def __call__(self, x, x0, sigma, problem, gradient):
        with torch.no_grad():
            r, u, nb = self._solve(problem, x.detach(), sigma)
            return -0.5 * inner(r, u, nb), (problem.A.adjoint(u) if gradient else None)


@dataclass(frozen=True)
class TweedieTwist(Twist):
    """``psi_sigma(x) = N(y; A D(x, sigma), sigma_y^2 I + r^2 A A^H)``, ``r^2 = x0_variance(sigma, sigma_data)
    / lam``; the gradient is ``J^H A^H S^{-1} (y - A D(x))`` with ``J = dD/dx``."""

    lam: float = 1.0
    sigma_data: float | None = None
    jacobian: Literal["network", "isotropic"] = "network"

    def __post_init__(self):
        if not self.lam > 0:
            raise ValueError(f"lam must be positive, got {self.lam}")
        if self.jacobian not in ("network", "isotropic"):
            raise ValueError(f"jacobian must be 'network' or 'isotropic', got {self.jacobian!r}")

    @property
    def network_gradient(self) -> bool:  # type: ignore[override]
        return self.jacobian == "network"

    def extra_var(self, sigma: float) -> float:
        return x0_variance(sigma, self.sigma_data) / self.lam

    def __call__(self, x, x0, sigma, problem, gradient):
        with torch.no_grad():
            r, u, nb = self._solve(problem, x0.detach(), sigma)
            log_psi = -0.5 * inner(r, u, nb)
            v = problem.A.adjoint(u) if gradient else None
        if v is None:
            return log_psi, None
        if sigma == 0:  # D(x, 0) = x: the Jacobian is the identity
            return log_psi, v
        if self.jacobian == "isotropic" or not x0.requires_grad:
            return log_psi, (self.extra_var(sigma) * self.lam / float(sigma) ** 2) * v
        (grad,) = torch.autograd.grad(inner(v, x0, nb).sum(), x)
        return log_psi, grad
