"""Classical ultrasound baselines: linear interpolation of missing scan lines."""
from __future__ import annotations

import torch

__all__ = ["interpolate_lines"]


def interpolate_lines(y: torch.Tensor, indices: torch.Tensor, total: int) -> torch.Tensor:
    """Frames ``(*batch, samples, total)`` from the acquired lines ``y`` ``(*batch, samples, len(indices))``:
    each missing line linearly interpolated between its acquired neighbours (the nearest one beyond the ends)."""
    order = torch.argsort(indices)
    idx, vals = indices[order].to(torch.float64), y[..., order]
    pos = torch.arange(total, dtype=torch.float64, device=y.device)
    right = torch.searchsorted(idx.to(y.device), pos).clamp(1, max(1, idx.numel() - 1))
    left = right - 1
    if idx.numel() == 1:
        return vals[..., [0] * total]
    x0, x1 = idx.to(y.device)[left], idx.to(y.device)[right]
    t = ((pos - x0) / (x1 - x0)).clamp(0, 1).to(y.real.dtype)
    return vals[..., left] * (1 - t) + vals[..., right] * t
