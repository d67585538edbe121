"""Calibration of posterior ensembles: credible-interval coverage, z-scores and their histogram, effective sample
size of weighted particles.

Arrays are torch tensors or numpy arrays of one shape (``(S, H, W)`` volumes or anything else); results are
Python floats or numpy arrays. A calibrated ``level`` credible interval covers about ``level`` of the true
pixels, and z-scores ``(truth - mean) / std`` of a calibrated Gaussian posterior have unit variance.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["effective_sample_size", "foreground", "interval_coverage", "z_histogram", "z_scores"]

ArrayLike = torch.Tensor | np.ndarray


def _np(a: ArrayLike) -> np.ndarray:
    t = torch.as_tensor(a)
    if t.is_complex():
        t = t.abs()
    return t.detach().cpu().to(torch.float64).numpy()


def foreground(reference: ArrayLike, fraction: float = 0.05) -> np.ndarray:
    """Pixels of ``reference`` above ``fraction`` of its maximum (where magnitude intervals are meaningful: the
    magnitude of a noisy background never reaches zero)."""
    ref = _np(reference)
    return ref > fraction * float(ref.max())


def interval_coverage(
    reference: ArrayLike, lower: ArrayLike, upper: ArrayLike, mask: ArrayLike | None = None
) -> float:
    """Fraction of pixels (inside ``mask`` when given) with ``lower <= reference <= upper``."""
    ref, lo, hi = _np(reference), _np(lower), _np(upper)
    if not ref.shape == lo.shape == hi.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, lower {lo.shape}, upper {hi.shape}")
    inside = (lo <= ref) & (ref <= hi)
    if mask is not None:
        inside = inside[np.asarray(mask, dtype=bool)]
    return float(inside.mean()) if inside.size else float("nan")


def z_scores(reference: ArrayLike, mean: ArrayLike, std: ArrayLike, floor: float = 1e-12) -> np.ndarray:
    """``(reference - mean) / max(std, floor)`` pixel-wise."""
    return (_np(reference) - _np(mean)) / np.maximum(_np(std), floor)


def z_histogram(z: ArrayLike, edges: np.ndarray | None = None) -> dict[str, list[float]]:
    """Density histogram of z-scores on ``edges`` (default -5..5 in steps of 0.5; values beyond go to the end
    bins), beside the standard normal density at the bin centres, and the z-scores' mean and std."""
    values = _np(z).ravel()
    edges = np.arange(-5.0, 5.01, 0.5) if edges is None else np.asarray(edges, dtype=np.float64)
    clipped = np.clip(values, edges[0], edges[-1])
    density, _ = np.histogram(clipped, bins=edges, density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    normal = np.exp(-0.5 * centres**2) / np.sqrt(2 * np.pi)
    return {
        "edges": edges.tolist(),
        "density": density.tolist(),
        "normal_density": normal.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }


def effective_sample_size(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Normalised ESS ``1 / (P sum_p w_p^2)`` of log-weights along ``dim`` (``P`` entries), in ``(0, 1]``."""
    w = torch.softmax(log_weights.to(torch.float64), dim=dim)
    return (1.0 / (w.shape[dim] * (w**2).sum(dim))).to(log_weights.dtype)
