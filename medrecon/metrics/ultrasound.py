"""Ultrasound image quality: generalised contrast-to-noise ratio (gCNR), CNR, PSNR on the envelope, and the
full width at half maximum of point targets. Inputs are envelopes (or B-mode in dB where stated) as arrays or
tensors ``(H, W)``; regions are boolean masks of the same shape."""
from __future__ import annotations

import math

import numpy as np
import torch

from operators.ultrasound import envelope

from .image import psnr

__all__ = ["cnr", "envelope_psnr", "fwhm", "gcnr", "point_fwhm"]

ArrayLike = np.ndarray | torch.Tensor


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


def gcnr(image: ArrayLike, inside: ArrayLike, outside: ArrayLike, bins: int = 256) -> float:
    """``1 - sum_k min(p_in(k), p_out(k))``: one minus the overlap of the two regions' histograms (shared bins
    over both value ranges; Rodriguez-Molares et al. 2020). 1 = fully separable, 0 = identical distributions."""
    img = _np(image)
    a, b = img[_np(inside) > 0], img[_np(outside) > 0]
    if a.size == 0 or b.size == 0:
        raise ValueError("gCNR needs non-empty inside and outside regions")
    edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), bins + 1)
    pa = np.histogram(a, edges)[0] / a.size
    pb = np.histogram(b, edges)[0] / b.size
    return float(1.0 - np.minimum(pa, pb).sum())


def cnr(image: ArrayLike, inside: ArrayLike, outside: ArrayLike) -> float:
    """``|mu_in - mu_out| / sqrt(var_in + var_out)``."""
    img = _np(image)
    a, b = img[_np(inside) > 0], img[_np(outside) > 0]
    return float(abs(a.mean() - b.mean()) / math.sqrt(a.var() + b.var()))


def envelope_psnr(reference_rf: ArrayLike, rf: ArrayLike) -> float:
    """PSNR in dB between the envelopes of two RF frames (or IQ), peak = the reference envelope's maximum."""
    ref = envelope(torch.as_tensor(_np(reference_rf)))
    est = envelope(torch.as_tensor(_np(rf)))
    return psnr(ref[None], est[None], float(ref.max()))


def fwhm(profile: ArrayLike, spacing: float = 1.0) -> float:
    """Full width at half maximum of a 1D profile around its peak, with linear interpolation of both crossings,
    in units of ``spacing``; ``inf`` when the profile does not fall below half its peak on both sides."""
    p = _np(profile).reshape(-1)
    k = int(np.argmax(p))
    half = 0.5 * p[k]
    left = next((i for i in range(k, 0, -1) if p[i - 1] < half), None)
    right = next((i for i in range(k, p.size - 1) if p[i + 1] < half), None)
    if left is None or right is None:
        return math.inf
    x_left = left - (p[left] - half) / (p[left] - p[left - 1])
    x_right = right + (p[right] - half) / (p[right] - p[right + 1])
    return float((x_right - x_left) * spacing)


def point_fwhm(env: ArrayLike, point: tuple[int, int], dz: float = 1.0, dx: float = 1.0, search: int = 3
               ) -> tuple[float, float]:
    """``(axial, lateral)`` FWHM of the envelope ``(H, W)`` at the local maximum within ``search`` pixels of
    ``point`` (row, col), in the units of ``dz`` and ``dx``."""
    e = _np(env)
    r0, c0 = point
    rs, cs = slice(max(0, r0 - search), r0 + search + 1), slice(max(0, c0 - search), c0 + search + 1)
    r, c = np.unravel_index(np.argmax(e[rs, cs]), e[rs, cs].shape)
    r, c = r + rs.start, c + cs.start
    return fwhm(e[:, c], dz), fwhm(e[r, :], dx)
