"""Weighted particles: ``x`` ``(P, B, *image)`` with log-weights ``(P, B)`` (``P`` particles for each of ``B``
images). Normalisation, effective sample size, systematic resampling per image and weighted posterior summaries."""
from __future__ import annotations

import torch

from medrecon.metrics.calibration import effective_sample_size

__all__ = ["ess_fraction", "gather_particles", "normalised", "systematic_indices", "tempering_exponent",
           "weighted_summary"]


def normalised(log_weights: torch.Tensor) -> torch.Tensor:
    """Log-weights ``(P, B)`` shifted so that each image's weights sum to one."""
    return log_weights - torch.logsumexp(log_weights, dim=0, keepdim=True)


def ess_fraction(log_weights: torch.Tensor) -> torch.Tensor:
    """Normalised effective sample size ``1 / (P sum_p w_p^2)`` per image, in ``(0, 1]``; shape ``(B,)``."""
    return effective_sample_size(log_weights, dim=0)


def tempering_exponent(increment: torch.Tensor, ess_floor: float, iters: int = 40) -> torch.Tensor:
    """The largest ``alpha`` in ``[0, 1]`` per image such that the log-weight increment ``alpha * increment`` on
    its own (from equal weights) keeps a normalised ESS of at least ``ess_floor`` (bisection; ``1`` where the
    whole increment does; a floor of 1 admits only ``alpha = 0`` unless the increment is constant). Shapes
    ``(P, B)`` in, ``(B,)`` out."""
    inc = increment.to(torch.float64)
    full = ess_fraction(inc) >= ess_floor
    lo = torch.zeros(inc.shape[1], dtype=torch.float64, device=inc.device)
    hi = torch.ones_like(lo)
    for _ in range(iters if ess_floor < 1 else 0):
        mid = 0.5 * (lo + hi)
        ok = ess_fraction(mid * inc) >= ess_floor
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return torch.where(full, torch.ones_like(lo), lo)


def systematic_indices(log_weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Ancestor indices ``(P, B)`` by systematic resampling of each image's particles (one uniform per image)."""
    p, b = log_weights.shape
    w = torch.softmax(log_weights.to(torch.float64), dim=0).mT.contiguous()  # (B, P)
    cum = torch.cumsum(w, dim=-1)
    cum[:, -1] = 1.0
    u = torch.rand(b, 1, generator=generator, dtype=torch.float64, device=log_weights.device)
    positions = (u + torch.arange(p, dtype=torch.float64, device=log_weights.device)) / p
    return torch.searchsorted(cum, positions).clamp_max(p - 1).mT.contiguous()


def gather_particles(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``x[indices[p, b], b]`` for every particle ``p`` and image ``b``; ``x`` ``(P, B, ...)``."""
    index = indices.reshape(indices.shape + (1,) * (x.ndim - 2)).expand_as(x)
    return torch.gather(x, 0, index)


def _weighted_quantiles(values: torch.Tensor, w: torch.Tensor, levels: tuple[float, ...]) -> list[torch.Tensor]:
    """Per-pixel weighted quantiles of ``values`` ``(P, N)`` with weights ``(P,)`` (the smallest value whose
    cumulative weight reaches the level); one ``(N,)`` tensor per level."""
    order = torch.argsort(values, dim=0)
    sorted_values = torch.gather(values, 0, order)
    cum = torch.cumsum(w[order], dim=0).mT.contiguous()  # (N, P)
    out = []
    for level in levels:
        target = torch.full((cum.shape[0], 1), level, dtype=cum.dtype, device=cum.device)
        idx = torch.searchsorted(cum, target).clamp_max(values.shape[0] - 1)  # (N, 1)
        out.append(torch.gather(sorted_values, 0, idx.mT).squeeze(0))
    return out


def weighted_summary(
    x: torch.Tensor, log_weights: torch.Tensor, level: float = 0.9
) -> dict[str, torch.Tensor]:
    """The weighted posterior summary of particles ``x`` ``(P, B, *image)``.

    Returns ``mean`` ``(B, *image)`` (complex for complex ``x``), and, for the displayed image (the magnitude of
    complex ``x``), ``std`` (weighted standard deviation) and the central ``level`` credible interval
    ``lower``/``upper`` (weighted quantiles), each ``(B, *image)`` real.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    w = torch.softmax(log_weights.to(torch.float64), dim=0)  # (P, B)
    wx = w.reshape(w.shape + (1,) * (x.ndim - 2))
    mean = (wx.to(x.dtype) * x).sum(0)
    shown = x.abs() if x.is_complex() else x
    shown64 = shown.to(torch.float64)
    shown_mean = (wx * shown64).sum(0)
    std = ((wx * (shown64 - shown_mean) ** 2).sum(0)).clamp_min(0).sqrt()
    tail = 0.5 * (1 - level)
    lower, upper = [], []
    for b in range(x.shape[1]):
        lo, hi = _weighted_quantiles(shown64[:, b].reshape(x.shape[0], -1), w[:, b], (tail, 1 - tail))
        lower.append(lo.reshape(x.shape[2:]))
        upper.append(hi.reshape(x.shape[2:]))
    dtype = shown.dtype
    return {
        "mean": mean,
        "std": std.to(dtype),
        "lower": torch.stack(lower).to(dtype),
        "upper": torch.stack(upper).to(dtype),
    }
