"""FIR resampling of StyleGAN2 / NCSN++ (``upfirdn2d``): zero-insertion upsampling, padding, a normalised
separable FIR filter and decimation, plus the fused conv + resampling layers NCSN++ uses. Images ``(B, C, H, W)``."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["conv_downsample_2d", "downsample_2d", "fir_kernel", "upfirdn2d", "upsample_2d", "upsample_conv_2d"]


def fir_kernel(k: Sequence[float], gain: float = 1.0, device: torch.device | None = None) -> torch.Tensor:
    """The 2D filter ``outer(k, k) / sum(outer(k, k)) * gain`` (float32, ``(len(k), len(k))``)."""
    k1 = torch.as_tensor(k, dtype=torch.float32, device=device)
    k2 = torch.outer(k1, k1) if k1.ndim == 1 else k1
    return k2 / k2.sum() * gain


def upfirdn2d(x: torch.Tensor, k: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Insert ``up - 1`` zeros after every sample, pad both axes by ``pad`` (negative crops), convolve every
    channel with ``k`` (a true convolution: the kernel is flipped), keep every ``down``-th sample."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[..., ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    x = x[..., max(-p0, 0): x.shape[-2] - max(-p1, 0), max(-p0, 0): x.shape[-1] - max(-p1, 0)]
    weight = k.flip(0, 1).to(x.dtype)[None, None].expand(c, 1, *k.shape)
    return F.conv2d(x, weight, groups=c)[..., ::down, ::down]


def upsample_2d(x: torch.Tensor, k: Sequence[float], factor: int = 2) -> torch.Tensor:
    """FIR upsampling by ``factor``: ``(B, C, H, W) -> (B, C, H f, W f)``."""
    kk = fir_kernel(k, factor**2, x.device)
    p = kk.shape[0] - factor
    return upfirdn2d(x, kk, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: torch.Tensor, k: Sequence[float], factor: int = 2) -> torch.Tensor:
    """FIR downsampling by ``factor``: ``(B, C, H, W) -> (B, C, H / f, W / f)``."""
    kk = fir_kernel(k, 1.0, x.device)
    p = kk.shape[0] - factor
    return upfirdn2d(x, kk, down=factor, pad=((p + 1) // 2, p // 2))


def upsample_conv_2d(x: torch.Tensor, weight: torch.Tensor, k: Sequence[float], factor: int = 2) -> torch.Tensor:
    """A transposed conv with stride ``factor`` (``weight`` ``(out, in, kh, kw)``, flipped), then the FIR filter."""
    kk = fir_kernel(k, factor**2, x.device)
    p = (kk.shape[0] - factor) - (weight.shape[-1] - 1)
    x = F.conv_transpose2d(x, weight.flip(2, 3).transpose(0, 1), stride=factor)
    return upfirdn2d(x, kk, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def conv_downsample_2d(x: torch.Tensor, weight: torch.Tensor, k: Sequence[float], factor: int = 2) -> torch.Tensor:
    """The FIR filter, then a conv with stride ``factor`` (``weight`` ``(out, in, kh, kw)``)."""
    kk = fir_kernel(k, 1.0, x.device)
    p = (kk.shape[0] - factor) + (weight.shape[-1] - 1)
    return F.conv2d(upfirdn2d(x, kk, pad=((p + 1) // 2, p // 2)), weight, stride=factor)
