"""Image-quality metrics with fastMRI's definitions (``fastmri/evaluate.py``), computed in torch.

Volumes are ``(S, H, W)`` (a 2D image counts as one slice), torch tensors or numpy arrays, real magnitudes
(complex inputs are replaced by their magnitude). Results are Python floats.

- ``nmse = ||gt - pred||^2 / ||gt||^2`` over the whole volume;
- ``psnr = 10 log10(maxval^2 / mse)`` with ``maxval = gt.max()`` of the volume unless given (e.g. the file's
  ``max`` attribute);
- ``ssim`` = mean over slices of the 2D SSIM with a 7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample
  covariances and ``data_range = maxval``, as ``skimage.metrics.structural_similarity`` defaults; the mean is
  taken over the window positions that lie fully inside the image.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["nmse", "psnr", "ssim"]

ArrayLike = torch.Tensor | np.ndarray


def _volume(a: ArrayLike) -> torch.Tensor:
    t = torch.as_tensor(a)
    if t.is_complex():
        t = t.abs()
    t = t.to(torch.float64)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError(f"expected an image (H, W) or volume (S, H, W), got shape {tuple(t.shape)}")
    return t


def _pair(gt: ArrayLike, pred: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    g, p = _volume(gt), _volume(pred)
    if g.shape != p.shape:
        raise ValueError(f"shapes differ: ground truth {tuple(g.shape)}, prediction {tuple(p.shape)}")
    return g, p.to(g.device)


def nmse(gt: ArrayLike, pred: ArrayLike) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2`` of the volume."""
    g, p = _pair(gt, pred)
    return float((g - p).square().sum() / g.square().sum())


def psnr(gt: ArrayLike, pred: ArrayLike, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of the volume; ``maxval`` defaults to ``gt.max()``."""
    g, p = _pair(gt, pred)
    peak = float(g.max()) if maxval is None else float(maxval)
    mse = float((g - p).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def ssim(gt: ArrayLike, pred: ArrayLike, maxval: float | None = None, win_size: int = 7,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean over slices of the 2D structural similarity (fastMRI / scikit-image definition)."""
    g, p = _pair(gt, pred)
    if min(g.shape[-2:]) < win_size:
        raise ValueError(f"images {tuple(g.shape[-2:])} are smaller than the {win_size}x{win_size} window")
    peak = float(g.max()) if maxval is None else float(maxval)
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    n = win_size**2
    cov_norm = n / (n - 1)
    x, y = g.unsqueeze(1), p.unsqueeze(1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s.mean(dim=(-3, -2, -1)).mean())
