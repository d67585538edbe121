"""Small explicit operators: dense matrices and element-wise diagonals (references for tests, Gaussian problems)."""
from __future__ import annotations

import torch

from .base import LinearOperator

__all__ = ["Diagonal", "MatrixOperator"]


class MatrixOperator(LinearOperator):
    """``x -> M x`` for a dense ``M`` of shape ``(m, n)`` acting on ``(*batch, n)`` vectors."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.register_buffer("matrix", matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix.to(x.dtype).mT

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix.to(y.dtype).conj()

    def __repr__(self) -> str:
        return f"MatrixOperator{tuple(self.matrix.shape)}"


class Diagonal(LinearOperator):
    """Element-wise multiplication by ``weights`` (broadcast against the input)."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.weights.conj() * y

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights.abs() ** 2) * x
