"""The Fourier-domain Wiener denoiser (the classical yardstick of ``medrecon bench prior``)."""
import torch

from medrecon.baselines.wiener import FourierWienerDenoiser


def test_fourier_wiener_is_exact_for_a_white_gaussian_prior():
    g = torch.Generator().manual_seed(1)
    imgs = 0.2 + 0.5 * torch.randn(4000, 4, 4, generator=g, dtype=torch.float64)
    w = FourierWienerDenoiser.fit(imgs)
    x = torch.randn(2, 4, 4, generator=g, dtype=torch.float64)
    want = 0.2 + 0.25 / (0.25 + 0.3**2) * (x - 0.2)
    torch.testing.assert_close(w(x, 0.3), want, atol=0.03, rtol=0)
