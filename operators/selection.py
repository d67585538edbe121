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
        indices: distinct row indices in ``[0, total)``, in acquisition order: ``(k,)`` shared by every sample,
            or ``(B, k)`` per sample (sample ``b`` of a batch ``(..., B, *range)`` keeps its own ``k`` rows; the
            sample dimension is ``sample_dim``).
        total: number of candidate rows.
        dim: the row dimension (negative, counted from the end).
        sample_dim: with per-sample indices, the batch dimension (negative; ``-3`` for 2D measurements).
    """

    def __init__(self, indices: Sequence[int] | torch.Tensor, total: int, dim: int = -2, sample_dim: int = -3):
        super().__init__()
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.ndim not in (1, 2):
            raise ValueError(f"indices must be (k,) or (B, k), got shape {tuple(idx.shape)}")
        if dim >= 0 or sample_dim >= 0 or sample_dim == dim:
            raise ValueError(f"dim and sample_dim must be distinct and negative, got {dim}, {sample_dim}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= total):
            raise ValueError(f"row indices must lie in [0, {total}), got {idx.tolist()}")
        rows = idx.reshape(-1, idx.shape[-1]) if idx.numel() else idx.reshape(1, 0)
        if any(r.unique().numel() != r.numel() for r in rows):
            raise ValueError(f"row indices must be distinct, got {idx.tolist()}")
        self.register_buffer("indices", idx)
        self.total, self.dim, self.sample_dim = int(total), dim, sample_dim

    @property
    def per_sample(self) -> bool:
        return self.indices.ndim == 2

    def _index(self, like: torch.Tensor, rows: int) -> torch.Tensor:
        """The per-sample indices ``(B, k)`` broadcast to ``like`` with ``rows`` entries along ``dim``."""
        d, s = self.dim % like.ndim, self.sample_dim % like.ndim
        if like.shape[s] != self.indices.shape[0]:
            raise ValueError(f"per-sample indices for {self.indices.shape[0]} samples, got {like.shape[s]} along "
                             f"dim {self.sample_dim}")
        view = [1] * like.ndim
        view[s], view[d] = self.indices.shape
        shape = list(like.shape)
        shape[d] = rows
        return self.indices.to(like.device).reshape(view).expand(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[self.dim] != self.total:
            raise ValueError(f"expected {self.total} rows along dim {self.dim}, got {x.shape[self.dim]}")
        if self.per_sample:
            return torch.gather(x, self.dim % x.ndim, self._index(x, self.indices.shape[1]))
        return torch.index_select(x, self.dim, self.indices.to(x.device))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        shape = list(y.shape)
        shape[self.dim] = self.total
        out = torch.zeros(shape, dtype=y.dtype, device=y.device)
        if self.per_sample:
            return out.scatter(self.dim % y.ndim, self._index(y, self.indices.shape[1]), y)
        return out.index_copy(self.dim % y.ndim, self.indices.to(y.device), y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjoint(self.forward(x))

    def __repr__(self) -> str:
        per = f"{self.indices.shape[-1]} per sample" if self.per_sample else str(self.indices.numel())
        return f"SelectRows({per} of {self.total})"
