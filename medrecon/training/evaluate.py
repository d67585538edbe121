"""Evaluation of a prior: held-out denoising PSNR and unconditional samples (training previews, ``bench prior``)."""
from __future__ import annotations

import math

import torch

from ..priors.base import Denoiser
from ..samplers import Heun, run
from ..samplers.transitions import gaussian_like
from ..schedules import karras

__all__ = ["denoising_psnr", "heun_sample", "save_image_grid"]


def heun_sample(denoiser: Denoiser, shape: tuple[int, ...], generator: torch.Generator, steps: int = 18,
                sigma_min: float = 0.002, sigma_max: float = 20.0, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """Unconditional samples ``shape = (B, *image)`` from the prior alone: ``medrecon.samplers.Heun`` (EDM's
    deterministic Heun sampler of ``dx/dsigma = (x - D(x, sigma)) / sigma``) on ``karras(steps, sigma_min,
    sigma_max)``, started from ``sigma_max * n``.

    Complex ``dtype`` draws complex noise with each of the real and imaginary parts of std ``sigma`` (matching the
    two-channel training noise, ``E|n|^2 = 2 sigma^2``).
    """
    sampler = Heun(karras(steps, sigma_min, sigma_max), init_var=0.0)
    return run(sampler, None, denoiser, generator, shape=shape, dtype=dtype, device=device, progress=False).x


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
            est = denoiser(x0 + s * gaussian_like(x0, generator), s)
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
