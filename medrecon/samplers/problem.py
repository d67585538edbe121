"""The measurement model ``y = A x0 + sigma_y n`` as a value: operator, data and noise level."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from operators import LinearOperator, inner

__all__ = ["InverseProblem"]


@dataclass
class InverseProblem:
    """``y = A x0 + sigma_y n`` with ``n`` standard normal in every real component.

    Args:
        A: the (noiseless) forward operator, acting on ``(B, *domain)``.
        y: measurements ``(B, *range)``; ``B`` independent problems share ``A`` (or ``A`` carries per-sample
            buffers broadcast along ``B``).
        sigma_y: measurement noise std in the units of ``y`` (0 for noiseless data).
    """

    A: LinearOperator
    y: torch.Tensor
    sigma_y: float = 0.0
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

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``y - A x``, shape of ``y``."""
        return self.y - self.A(x)

    def residual_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``||y - A x||`` per sample, shape ``(B,)``."""
        r = self.residual(x)
        return inner(r, r).clamp_min(0).sqrt()

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``-||y - A x||^2 / (2 sigma_y^2)`` per sample (the normalising constant dropped); shape ``(B,)``."""
        self._require_noise()
        r = self.residual(x)
        return -0.5 * inner(r, r) / self.sigma_y**2

    def grad_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H (y - A x) / sigma_y^2``, shape of ``x`` (the real-vector gradient for complex ``x``)."""
        self._require_noise()
        return self.A.adjoint(self.residual(x)) / self.sigma_y**2

    def select(self, start: int, stop: int) -> InverseProblem:
        """The sub-problem of samples ``start:stop`` (the operator is shared)."""
        return InverseProblem(self.A, self.y[start:stop], self.sigma_y)

    def _require_noise(self) -> None:
        if not self.sigma_y > 0:
            raise ValueError("the Gaussian likelihood needs sigma_y > 0 (noiseless data has no density)")
