"""Selecting acquisitions from a full candidate set: rows of a measurement (CT views, ultrasound scan lines).

``SelectRows(indices, total) @ A_all`` measures only the chosen rows of ``A_all``'s output, so choosing a new view
swaps this factor (``Composition.with_factor(SelectRows, SelectRows(new, total))``) and never rebuilds ``A_all``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import LinearOperator

__all__ = ["SelectRows"]


class SelectRows(LinearOperator):
    """``y -> y[..., indices, :]`` along dimension ``dim`` of the measurement (``-2``: the views of a sinogram
    ``(*batch, views, detectors)``); the adjoint puts the rows back into zeros of length ``total``.

    Args:
        indices: distinct row indices in ``[0, total)``, in acquisition order.
        total: number of candidate rows.
        dim: the row dimension (negative, counted from the end).
    """

    def __init__(self, indices: Sequence[int] | torch.Tensor, total: int, dim: int = -2):
        super().__init__()
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if dim >= 0:
            raise ValueError(f"dim must be negative (counted from the end), got {dim}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= total):
            raise ValueError(f"row indices must lie in [0, {total}), got {idx.tolist()}")
        if idx.unique().numel() != idx.numel():
            raise ValueError(f"row indices must be distinct, got {idx.tolist()}")
        self.register_buffer("indices", idx)
        self.total, self.dim = int(total), dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[self.dim] != self.total:
            raise ValueError(f"expected {self.total} rows along dim {self.dim}, got {x.shape[self.dim]}")
        return torch.index_select(x, self.dim, self.indices.to(x.device))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        shape = list(y.shape)
        shape[self.dim] = self.total
        out = torch.zeros(shape, dtype=y.dtype, device=y.device)
        return out.index_copy(self.dim % y.ndim, self.indices.to(y.device), y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjoint(self.forward(x))

    def __repr__(self) -> str:
        return f"SelectRows({self.indices.numel()} of {self.total})"
