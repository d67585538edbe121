"""Fourier-domain Wiener denoiser: the exact Tweedie denoiser of a stationary Gaussian prior fitted to images, the
classical yardstick of ``medrecon bench prior``.

Prior: ``x0 = mu + n`` with ``n`` Gaussian and diagonal in the centred orthonormal 2D Fourier basis with power
spectrum ``P(k) = E|F(x0 - mu)(k)|^2``. Then ``D(x, sigma) = mu + F^-1[ P / (P + sigma^2) F(x - mu) ]`` (for complex
images each of the real and imaginary noise parts has std sigma, so the noise power per coefficient is
``2 sigma^2`` against a complex power ``P``; for real images the noise power is ``sigma^2``).
"""
from __future__ import annotations

import torch
from torch import nn

from medrecon.priors.base import as_sigma
from operators.mri import fft2c, ifft2c

__all__ = ["FourierWienerDenoiser"]


class FourierWienerDenoiser(nn.Module):
    """Wiener denoiser of ``(B, H, W)`` images (real or complex) from a mean image and a power spectrum."""

    def __init__(self, mean: torch.Tensor, power: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("power", power.real.to(torch.float64 if mean.dtype in (torch.float64, torch.complex128)
                                                   else torch.float32))

    @classmethod
    def fit(cls, images: torch.Tensor) -> FourierWienerDenoiser:
        """Fit the mean and power spectrum to training images ``(N, H, W)``."""
        mean = images.mean(0)
        power = fft2c(images - mean).abs().pow(2).mean(0)
        return cls(mean, power)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s2 = as_sigma(sigma, x).reshape(-1, 1, 1) ** 2
        noise_power = 2 * s2 if x.is_complex() else s2
        gain = self.power / (self.power + noise_power)
        out = self.mean + ifft2c(gain * fft2c(x - self.mean))
        return out if x.is_complex() else out.real.to(x.dtype)
