"""Scores of candidate measurements from posterior particles (ADS, reference section 8).

A candidate ``l`` measures a group of entries (a k-space column over rows and coils, a CT view over detectors).
Given the particles' predicted measurements ``z_p(l)``, the pairwise disagreement is
``d_pq(l) = sum over the group |z_p(l) - z_q(l)|^2``, and a candidate is worth acquiring when the particles
disagree about it. Two kernels rank candidates by it:

- ``sign="entropy"``: the entropy of the Gaussian mixture ``(1/P) sum_q N(z; z_q, sigma^2 I)`` at its own
  particles, ``-(1/P) sum_p log (1/P) sum_q exp(-d_pq / (2 sigma^2))`` (up to a constant): the expected
  information of measuring ``l`` with noise ``sigma``; it saturates once the particles are far apart relative to
  ``sigma``.
- ``sign="ads"``: ADS's released code, ``sum_p log sum_q exp(+d_pq / (2 sigma^2))``: grows without bound with the
  spread (dominated by the largest distances), so it ranks by the widest disagreement.

Both are invariant to the order of the particles.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = ["auto_kernel_variance", "disagreement", "greedy_batch", "kernel_scores", "mixture_entropy_scores"]


def disagreement(predictions: torch.Tensor, candidate_dim: int) -> torch.Tensor:
    """``d_pq(l)`` for particle predictions ``(P, B, ...)`` whose dimension ``candidate_dim`` (counted in the full
    shape, negative allowed) indexes the candidates; every other trailing dimension is summed. Returns
    ``(B, L, P, P)``."""
    p, b = predictions.shape[:2]
    moved = torch.movedim(predictions, candidate_dim, 2)  # (P, B, L, ...)
    flat = moved.reshape(p, b, moved.shape[2], -1)
    if flat.is_complex():
        flat = torch.view_as_real(flat).flatten(-2)
    flat = flat.to(torch.float64).permute(1, 2, 0, 3)  # (B, L, P, n)
    sq = (flat**2).sum(-1)
    d = sq[..., :, None] + sq[..., None, :] - 2 * flat @ flat.mT
    return d.clamp_min(0)


def mixture_entropy_scores(
    predictions: torch.Tensor, candidate_dim: int, sigma: float, sign: Literal["entropy", "ads"] = "entropy"
) -> torch.Tensor:
    """Score of every candidate ``(B, L)`` from particle predictions (``disagreement``) with kernel width
    ``sigma`` (measurement units) and the kernel ``sign`` (module docstring)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return kernel_scores(disagreement(predictions, candidate_dim), sigma**2, sign)


def kernel_scores(
    d: torch.Tensor, sigma2: float | torch.Tensor, sign: Literal["entropy", "ads"] = "entropy"
) -> torch.Tensor:
    """Scores ``(B, L)`` from disagreements ``d`` ``(B, L, P, P)`` and the kernel variance ``sigma2`` (a number
    or one per problem, ``(B,)``)."""
    s2 = torch.as_tensor(sigma2, dtype=d.dtype, device=d.device).reshape(-1, 1, 1, 1)
    scaled = d / (2 * s2)
    p = d.shape[-1]
    if sign == "entropy":
        return -(torch.logsumexp(-scaled, dim=-1) - math.log(p)).mean(-1)
    if sign == "ads":
        return torch.logsumexp(scaled, dim=-1).sum(-1)
    raise ValueError(f"sign must be 'entropy' or 'ads', got {sign!r}")


def auto_kernel_variance(d: torch.Tensor, acquired: torch.Tensor, noise_var: float = 0.0) -> torch.Tensor:
    """The kernel variance ``(B,)`` that puts the median disagreement over unacquired candidates and particle
    pairs at one kernel width (``sigma^2 = noise_var + median(d) / 2``), so the scores neither saturate nor
    vanish at any data scale."""
    b, n, p, _ = d.shape
    off = ~torch.eye(p, dtype=torch.bool, device=d.device)
    out = []
    for i in range(b):
        free = d[i][~acquired.expand(b, n)[i]]  # (L_free, P, P)
        values = free[:, off] if free.numel() else d[i][:, off]
        out.append(float(values.median()) / 2 + noise_var)
    return torch.tensor(out, dtype=d.dtype, device=d.device).clamp_min(torch.finfo(d.dtype).tiny)


def greedy_batch(
    scores: torch.Tensor, k: int, acquired: torch.Tensor, diversity: float = 0.0, width: float = 1.0,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Choose ``k`` unacquired candidates per image, greedily: the best score, then the best after subtracting
    ``diversity * exp(-(distance to a chosen one)^2 / (2 width^2))`` times the score range, so one round does not
    pick near-duplicates (neighbouring k-space columns, adjacent views).

    Args:
        scores: ``(B, L)``.
        k: candidates per image this round (at most the unacquired count).
        acquired: ``(B, L)`` or ``(L,)`` bool, never chosen again.
        diversity: penalty weight in [0, 1] (0: plain top-k).
        width: the penalty's width in units of ``positions``.
        positions: ``(L,)`` or ``(L, D)`` candidate coordinates (default: the indices).

    Returns:
        ``(B, k)`` long indices, in the order chosen.
    """
    b, n = scores.shape
    taken = acquired.expand(b, n).clone()
    if k < 0 or int((~taken).sum(-1).min()) < k:
        raise ValueError(f"cannot choose {k} candidates: only {int((~taken).sum(-1).min())} are not acquired")
    work = scores.to(torch.float64).clone()
    spread = (work.max(-1, keepdim=True).values - work.min(-1, keepdim=True).values).clamp_min(1e-12)
    pos = torch.arange(n, dtype=torch.float64) if positions is None else torch.as_tensor(positions)
    pos = pos.to(device=scores.device, dtype=torch.float64).reshape(n, -1)
    chosen = []
    for _ in range(k):
        masked = work.masked_fill(taken, -math.inf)
        pick = masked.argmax(-1)
        chosen.append(pick)
        taken[torch.arange(b), pick] = True
        if diversity:
            dist2 = ((pos[None] - pos[pick][:, None]) ** 2).sum(-1)  # (B, L)
            near = torch.exp(-dist2 / (2 * width**2))
            work = work - diversity * spread * near
    return torch.stack(chosen, -1) if chosen else torch.zeros(b, 0, dtype=torch.long, device=scores.device)
