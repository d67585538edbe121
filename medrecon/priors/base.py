"""The denoiser interface every prior is put behind: ``D(x, sigma) = E[x0 | x]`` in the VE/EDM variable.

Samplers work with ``x = x0 + sigma * eps`` (sigma descending to 0). Networks trained as VP, eps/x0/v predictors
are converted at the prior boundary by the adapters in this package; nothing downstream sees alpha or beta.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["Denoiser", "as_sigma", "score"]


@runtime_checkable
class Denoiser(Protocol):
    """Tweedie denoiser ``D(x, sigma) -> E[x0 | x0 + sigma * eps = x]``.

    ``x`` has shape ``(B, *image)``; ``sigma`` is a float or a tensor of shape ``(B,)`` (noise std in image
    units). The output has the shape and dtype of ``x``.
    """

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor: ...


def as_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` as a real tensor of shape ``(B,)`` on ``x``'s device (``B = x.shape[0]``)."""
    real = x.real.dtype if x.is_complex() else x.dtype
    s = torch.as_tensor(sigma, dtype=real, device=x.device)
    return s.expand(x.shape[0]) if s.ndim == 0 else s.reshape(x.shape[0])


def score(denoiser: Denoiser, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2``."""
    s = as_sigma(sigma, x)
    s2 = (s**2).reshape((-1,) + (1,) * (x.ndim - 1))
    return (denoiser(x, s) - x) / s2
