"""Independent priors on stacked sources: the product prior ``p(x_1, ..., x_K) = prod_k p_k(x_k)`` (dehazing's
tissue and haze priors, one measurement of their sum)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Denoiser

__all__ = ["StackedDenoiser"]


class StackedDenoiser(nn.Module):
    """``D(x, sigma) = stack_k D_k(x_k, sigma)`` for sources stacked along ``dim`` of ``x`` ``(B, K, *image)``.

    Under a product prior the sources stay independent given their own noisy copies, so each Tweedie estimate is
    that source's own denoiser at the shared noise level. ``meta`` lists each denoiser's ``meta`` (if any)."""

    def __init__(self, denoisers: Sequence[Denoiser], dim: int = 1):
        super().__init__()
        if len(denoisers) < 1:
            raise ValueError("need at least one denoiser")
        self.denoisers = list(denoisers)
        self.modules_ = nn.ModuleList([d for d in denoisers if isinstance(d, nn.Module)])
        self.dim = dim
        self.meta = {"sources": [getattr(d, "meta", None) for d in denoisers]}

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if x.shape[self.dim] != len(self.denoisers):
            raise ValueError(f"expected {len(self.denoisers)} sources along dim {self.dim}, got {x.shape[self.dim]}")
        parts = [d(x.select(self.dim, k), sigma) for k, d in enumerate(self.denoisers)]
        return torch.stack(parts, self.dim)
