"""Several copies of a batch under one operator: ``R`` chains (posterior particles) of each of ``B`` problems in
one flat batch ``(R * B, *domain)``, for an operator whose buffers (coil maps, masks, selected views) belong to
the ``B`` problems."""
from __future__ import annotations

import torch

from .base import LinearOperator

__all__ = ["RepeatBatch"]


class RepeatBatch(LinearOperator):
    """``A`` applied to ``R`` stacked copies of its batch: the flat batch ``(R * B, ...)`` is read as
    ``(R, B, ...)`` (copy-major, as ``torch.cat([x] * R)`` lays it out), ``A`` broadcasts over the copies, and the
    result is flattened back.

    Args:
        op: an operator acting on ``(..., B, *domain)`` and broadcasting over leading dimensions.
        repeats: ``R``, the copies of each problem.
        domain_ndim: dimensions of one sample of the domain (2 for images ``(H, W)``).
        range_ndim: dimensions of one sample of the range (3 for k-space ``(C, H, W)``, 2 for sinograms).
    """

    def __init__(self, op: LinearOperator, repeats: int, domain_ndim: int, range_ndim: int):
        super().__init__()
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.op, self.repeats = op, int(repeats)
        self.domain_ndim, self.range_ndim = int(domain_ndim), int(range_ndim)

    def _apply(self, fn, v: torch.Tensor, ndim: int) -> torch.Tensor:
        lead = v.shape[: v.ndim - ndim]
        if not lead or lead[-1] % self.repeats:
            raise ValueError(f"a batch of {lead[-1] if lead else 0} is not {self.repeats} copies of one batch")
        out = fn(v.reshape(*lead[:-1], self.repeats, lead[-1] // self.repeats, *v.shape[v.ndim - ndim:]))
        return out.reshape(*lead, *out.shape[len(lead) + 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self.op.forward, x, self.domain_ndim)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(self.op.adjoint, y, self.range_ndim)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self.op.normal, x, self.domain_ndim)

    def __repr__(self) -> str:
        return f"RepeatBatch({self.op!r}, {self.repeats})"
