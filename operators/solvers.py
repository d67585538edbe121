"""Batched Krylov solvers over callables: conjugate gradient and power iteration.

Samples are independent along the leading ``batch_dims`` dimensions; every inner product is a per-sample Hermitian
product ``Re sum(conj(a) * b)`` over the remaining dimensions (``torch.vdot`` semantics, correct for complex data).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["cg", "inner", "power_norm"]

Normal = Callable[[torch.Tensor], torch.Tensor]


def inner(a: torch.Tensor, b: torch.Tensor, batch_dims: int = 1) -> torch.Tensor:
    """Per-sample real part of ``<a, b> = sum(conj(a) * b)``; shape ``a.shape[:batch_dims]`` (real)."""
    dims = tuple(range(batch_dims, a.ndim))
    prod = a.conj() * b if a.is_complex() else a * b
    return prod.sum(dim=dims).real if prod.is_complex() else prod.sum(dim=dims)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def cg(
    normal: Normal,
    rhs: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 10,
    damping: float = 0.0,
    tol: float | None = None,
    batch_dims: int = 1,
) -> torch.Tensor:
    """Solve ``(N + damping I) x = rhs`` for a Hermitian positive (semi-)definite ``N`` by conjugate gradient.

    Args:
        normal: the map ``x -> N x`` (e.g. ``A.normal``); must act sample-wise along the batch dimensions.
        rhs: right-hand side, shape ``(*batch, *domain)``.
        x0: starting point (zeros when omitted), same shape as ``rhs``.
        iters: maximum number of iterations (exactly this many when ``tol`` is None).
        damping: Tikhonov weight added to the diagonal.
        tol: stop once every sample's residual norm is below ``tol * ||rhs||``.
        batch_dims: number of leading dimensions holding independent samples.

    Returns:
        The iterate after ``iters`` steps or on convergence, shape of ``rhs``.
    """

    def apply(v: torch.Tensor) -> torch.Tensor:
        out = normal(v)
        return out + damping * v if damping else out

    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - apply(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rs = inner(r, r, batch_dims)
    threshold = None if tol is None else (tol**2) * inner(rhs, rhs, batch_dims)
    eps = torch.finfo(rs.dtype).eps
    tiny = torch.finfo(rs.dtype).tiny
    # A sample whose residual has fallen to round-off of the right-hand side is converged: freezing it stops CG
    # from amplifying round-off on singular (rank-deficient) systems when run for a fixed iteration count.
    floor = (eps**2) * inner(rhs, rhs, batch_dims) + tiny
    for _ in range(iters):
        active = rs > (floor if threshold is None else torch.maximum(floor, threshold))
        if not bool(active.any()):
            break
        ap = apply(p)
        pap = inner(p, ap, batch_dims)
        ok = active & (pap > eps * inner(p, p, batch_dims))
        alpha = torch.where(ok, rs / pap.clamp_min(tiny), torch.zeros_like(rs))
        x = x + _expand(alpha, x).to(x.dtype) * p
        r = r - _expand(alpha, r).to(r.dtype) * ap
        rs_new = inner(r, r, batch_dims)
        beta = torch.where(ok, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs))
        p = r + _expand(beta, p).to(p.dtype) * p
        rs = rs_new
    return x


def power_norm(
    normal: Normal,
    x0: torch.Tensor,
    iters: int = 30,
    batch_dims: int = 0,
) -> torch.Tensor:
    """Largest eigenvalue of ``N = A^H A`` by power iteration, i.e. ``||A||_2^2``.

    Args:
        normal: the map ``x -> A^H A x``.
        x0: a random start of the domain's shape (draw it with a seeded ``torch.Generator``).
        iters: number of iterations.
        batch_dims: leading dimensions with independent operators (0: one estimate for the whole tensor).

    Returns:
        The Rayleigh-quotient estimate, shape ``x0.shape[:batch_dims]``.
    """
    x = x0 / _expand(inner(x0, x0, batch_dims).sqrt(), x0).to(x0.dtype)
    estimate = torch.zeros(x0.shape[:batch_dims], dtype=x0.real.dtype, device=x0.device)
    for _ in range(iters):
        y = normal(x)
        estimate = inner(x, y, batch_dims)
        norm = inner(y, y, batch_dims).sqrt().clamp_min(torch.finfo(estimate.dtype).tiny)
        x = y / _expand(norm, y).to(y.dtype)
    return estimate
