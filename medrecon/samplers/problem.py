"""The measurement model ``y = A x0 + sigma_y n`` as a value: operator, data and noise level."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from operators import LinearOperator, cg, inner

__all__ = ["InverseProblem"]


@dataclass
class InverseProblem:
    """``y = A x0 + sigma_y n`` with ``n`` standard normal in every real component.

    Args:
        A: the (noiseless) forward operator, acting on ``(B, *domain)``.
        y: measurements ``(B, *range)``; ``B`` independent problems share ``A`` (or ``A`` carries per-sample
            buffers broadcast along ``B``).
        sigma_y: measurement noise std in the units of ``y`` (0 for noiseless data).
        support: optional ``(B, *domain)`` or ``(1, *domain)`` mask, 1 where the image may be non-zero and 0 where
            it is known to vanish (e.g. outside the coil maps' support, which no measurement sees): the samplers
            set the prior's estimate to zero there (``restrict``). None: no constraint.
    """

    A: LinearOperator
    y: torch.Tensor
    sigma_y: float = 0.0
    support: torch.Tensor | None = None
    _adjoint_y: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    @property
    def adjoint_y(self) -> torch.Tensor:
        """``A^H y`` (cached), shape ``(B, *domain)``; also fixes the image shape and dtype."""
        if self._adjoint_y is None:
            with torch.no_grad():
                self._adjoint_y = self.A.adjoint(self.y)
        return self._adjoint_y

    def batch_dims(self, x: torch.Tensor) -> int:
        """Leading dimensions of ``x`` that hold independent samples: 1 for ``(B, *image)``, 2 for particles
        ``(P, B, *image)`` (``y`` broadcasts along the extra leading dimensions)."""
        return x.ndim - self.adjoint_y.ndim + 1

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``y - A x``, shape of ``A x``."""
        return self.y - self.A(x)

    def residual_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``||y - A x||`` per sample, shape ``x.shape[:batch_dims]``."""
        r = self.residual(x)
        return inner(r, r, self.batch_dims(x)).clamp_min(0).sqrt()

    def whiten(
        self, r: torch.Tensor, extra_var: float = 0.0, batch_dims: int = 1, cg_iters: int = 50,
        tol: float | None = 1e-8,
    ) -> torch.Tensor:
        """``S^{-1} r`` for the measurement covariance ``S = sigma_y^2 I + extra_var A A^H`` (CG in measurement
        space when ``extra_var > 0``); ``r`` has ``batch_dims`` sample dimensions before the range's."""
        s2 = float(self.sigma_y) ** 2
        if extra_var < 0:
            raise ValueError(f"extra_var must be non-negative, got {extra_var}")
        if extra_var == 0:
            self._require_noise()
            return r / s2
        A = self.A
        return cg(lambda v: extra_var * A(A.adjoint(v)), r, iters=cg_iters, tol=tol, damping=s2,
                  batch_dims=batch_dims)

    def log_likelihood(
        self, x: torch.Tensor, extra_var: float = 0.0, cg_iters: int = 50, tol: float | None = 1e-8
    ) -> torch.Tensor:
        """``log N(y; A x, sigma_y^2 I + extra_var A A^H)`` per sample up to a constant that does not depend on
        ``x``: ``-(y - A x)^H S^{-1} (y - A x) / 2``; shape ``x.shape[:batch_dims]`` (``(B,)`` or ``(P, B)``).

        ``extra_var = 0`` is the measurement likelihood ``-||y - A x||^2 / (2 sigma_y^2)``; ``extra_var > 0``
        adds the uncertainty of ``x`` itself (``x ~ N(x0, extra_var I)``), which also allows ``sigma_y = 0``."""
        nb = self.batch_dims(x)
        r = self.residual(x)
        return -0.5 * inner(r, self.whiten(r, extra_var, nb, cg_iters, tol), nb)

    def grad_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H (y - A x) / sigma_y^2``, shape of ``x`` (the real-vector gradient for complex ``x``)."""
        self._require_noise()
        return self.A.adjoint(self.residual(x)) / self.sigma_y**2

    def select(self, start: int, stop: int) -> InverseProblem:
        """The sub-problem of samples ``start:stop`` (the operator is shared)."""
        support = self.support
        if support is not None and support.shape[0] > 1:
            support = support[start:stop]
        return InverseProblem(self.A, self.y[start:stop], self.sigma_y, support)

    def restrict(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` set to zero outside ``support``: ``x`` is ``(B, *domain)`` or ``(P, B, *domain)`` (P particles of
        each problem, as the SMC samplers hold them); unchanged without a support."""
        if self.support is None:
            return x
        return x * self.support.to(device=x.device, dtype=x.real.dtype)

    def _require_noise(self) -> None:
        if not self.sigma_y > 0:
            raise ValueError("the Gaussian likelihood needs sigma_y > 0 (noiseless data has no density)")
