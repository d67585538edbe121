"""Classical MRI reconstructions, the yardstick for the diffusion samplers.

Every reconstructor has one signature, ``recon(y, op, **options) -> image``: ``y`` is k-space ``(*batch, C, H, W)``
(unsampled entries zero), ``op`` the forward operator (e.g. :func:`operators.mri.multicoil_mri`) mapping images
``(*batch, H, W)`` to ``y``'s shape. Results are complex images ``(*batch, H, W)``, except :func:`rss_zero_filled`,
which returns the magnitude.

Defaults were tuned on simulated 8-coil MNI152 brain slices at 4x and 8x over three noise levels (``docs/mri.md``):
they are robust choices for noisy data; noiseless data favour less damping and more iterations.
"""
from __future__ import annotations

import math

import torch

from operators import LinearOperator, cg, power_norm
from operators.mri import ifft2c

__all__ = ["RECONSTRUCTORS", "cg_sense", "l1_wavelet", "rss_zero_filled", "zero_filled"]


def zero_filled(y: torch.Tensor, op: LinearOperator) -> torch.Tensor:
    """``A^H y``: coil-combined zero-filled image (with the operator's coil maps)."""
    return op.adjoint(y)


def rss_zero_filled(y: torch.Tensor, op: LinearOperator | None = None) -> torch.Tensor:
    """Root sum of squares of the zero-filled coil images ``|ifft2c(y)|`` (no coil maps needed); real."""
    return ifft2c(y).abs().square().sum(dim=-3).sqrt()


def cg_sense(
    y: torch.Tensor,
    op: LinearOperator,
    damping: float = 1e-3,
    iters: int = 30,
    tol: float | None = 1e-6,
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """CG-SENSE: solve ``(A^H A + damping I) x = A^H y`` by conjugate gradient (batched per sample).

    ``damping`` is absolute; with coil maps normalised to ``sum |S|^2 = 1`` the operator norm is 1, so it is the
    Tikhonov weight relative to ``||A||^2``.
    """
    rhs = op.adjoint(y)
    return cg(op.normal, rhs, x0=x0, iters=iters, damping=damping, tol=tol, batch_dims=rhs.ndim - 2)


def _soft_complex(coeff: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    # coeff (..., 2, h, w): real and imaginary parts; shrink the complex magnitude.
    mag = coeff.square().sum(dim=-3, keepdim=True).sqrt()
    return coeff * (1 - threshold / mag.clamp_min(1e-30)).clamp_min(0)


def _wavelet_shrink(x: torch.Tensor, threshold: torch.Tensor, wavelet: str, level: int) -> torch.Tensor:
    import ptwt

    h, w = x.shape[-2:]
    parts = torch.view_as_real(x).movedim(-1, -3)  # (*batch, 2, H, W)
    coeffs = ptwt.wavedec2(parts, wavelet, mode="zero", level=level)
    t = threshold.reshape(threshold.shape + (1, 1, 1))
    shrunk = [coeffs[0]] + [tuple(_soft_complex(c, t) for c in detail) for detail in coeffs[1:]]
    out = ptwt.waverec2(shrunk, wavelet)[..., :h, :w]
    return torch.view_as_complex(out.movedim(-3, -1).contiguous())


def l1_wavelet(
    y: torch.Tensor,
    op: LinearOperator,
    lamda: float = 1e-3,
    iters: int = 200,
    wavelet: str = "db4",
    level: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L1-wavelet compressed sensing by FISTA: ``min_x ||A x - y||^2 / 2 + lam ||W x||_1`` with ``W`` the
    ``wavelet`` decomposition (``ptwt``, zero padding; the approximation band is not penalised).

    Args:
        lamda: regularisation weight relative to ``max |A^H y|`` of each sample (scale invariant).
        iters: FISTA iterations; the step is ``1 / L`` with ``L = ||A||^2`` from ``power_norm``.
        generator: seeds the power iteration's start (default seed 0).
    """
    rhs = op.adjoint(y)
    batch_dims = rhs.ndim - 2
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    start = torch.randn(rhs.shape, dtype=rhs.dtype, generator=gen).to(rhs.device)
    lipschitz = 1.01 * power_norm(op.normal, start, iters=20, batch_dims=batch_dims)
    if not bool((lipschitz > 0).all()):
        raise ValueError("the operator maps some sample to zero (all-zero coil maps or mask?): nothing to fit")
    scale = rhs.abs().flatten(batch_dims).amax(dim=-1) if batch_dims else rhs.abs().amax()
    threshold = (lamda * scale / lipschitz).to(rhs.real.dtype)
    step = (1 / lipschitz).reshape(lipschitz.shape + (1, 1)).to(rhs.real.dtype)
    x = rhs.clone()
    z = x
    t = 1.0
    for _ in range(iters):
        x_new = _wavelet_shrink(z - (op.normal(z) - rhs) * step, threshold, wavelet, level)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


RECONSTRUCTORS = {
    "zero_filled": zero_filled,
    "rss_zero_filled": rss_zero_filled,
    "cg_sense": cg_sense,
    "l1_wavelet": l1_wavelet,
}
