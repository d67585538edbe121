"""Unconditional sampling and denoising evaluation of a prior (used by training previews and ``bench prior``)."""
from __future__ import annotations

import itertools
import math

import torch

from .base import Denoiser

__all__ = ["denoising_psnr", "heun_sample", "karras_sigmas", "save_image_grid"]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM's sigma schedule, ``steps`` values from ``sigma_max`` down to ``sigma_min`` followed by 0 (float64)."""
    i = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    s = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


@torch.no_grad()
def heun_sample(denoiser: Denoiser, shape: tuple[int, ...], generator: torch.Generator, steps: int = 18,
                sigma_min: float = 0.002, sigma_max: float = 20.0, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """EDM's deterministic Heun sampler of ``dx/dsigma = (x - D(x, sigma)) / sigma`` from ``sigma_max`` to 0.

    ``shape`` is ``(B, *image)``; complex ``dtype`` draws complex noise with ``E|n|^2 = 2 sigma^2`` split evenly
    over real and imaginary parts (each part has std ``sigma``, matching the two-channel training noise).
    """
    sig = karras_sigmas(steps, sigma_min, sigma_max).tolist()
    if dtype.is_complex:
        real = torch.randn((*shape, 2), generator=generator, device=device, dtype=torch.float32)
        x = torch.view_as_complex(real).to(dtype) * sig[0]
    else:
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype) * sig[0]
    for s, s_next in itertools.pairwise(sig):
        d = (x - denoiser(x, s)) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * (d + d2) / 2
        x = x_next
    return x


@torch.no_grad()
def denoising_psnr(denoiser: Denoiser, images: torch.Tensor, sigmas: list[float], generator: torch.Generator,
                   batch: int = 16) -> dict[float, float]:
    """Mean PSNR (dB) of ``D(x0 + sigma n, sigma)`` against ``x0`` over ``images`` ``(N, *image)`` per sigma.

    PSNR per image uses the image's peak ``max|x0|``; complex images get complex noise with each part of std sigma.
    """
    out = {}
    for s in sigmas:
        vals = []
        for i in range(0, images.shape[0], batch):
            x0 = images[i:i + batch]
            if x0.is_complex():
                noise = torch.view_as_complex(torch.randn((*x0.shape, 2), generator=generator, device=x0.device,
                                                          dtype=x0.real.dtype))
            else:
                noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            est = denoiser(x0 + s * noise, s)
            dims = tuple(range(1, x0.ndim))
            mse = (est - x0).abs().pow(2).mean(dim=dims)
            peak = x0.abs().amax(dim=dims)
            vals.append(10 * torch.log10(peak**2 / mse.clamp_min(1e-20)))
        out[float(s)] = float(torch.cat(vals).mean())
    return out


def save_image_grid(images: torch.Tensor, path: str, vmax: float | None = None, title: str | None = None) -> None:
    """Save ``(N, H, W)`` images (magnitude if complex) as a square-ish grid PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = images.detach().abs().float().cpu().numpy() if images.is_complex() else images.detach().float().cpu().numpy()
    n = imgs.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + (0.3 if title else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(imgs[k], cmap="gray", vmin=0.0, vmax=vmax if vmax is not None else float(imgs.max()))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
