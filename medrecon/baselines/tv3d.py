"""3D total variation for a CT volume: the slices of one volume reconstructed together, coupled along z.

``tv_3d`` minimises ``||A x - y||^2 / (2 c) + lam * sum_v sqrt((w D_z x)_v^2 + (D_y x)_v^2 + (D_x x)_v^2)`` over
the volume ``x`` ``(Z, H, W)`` (``A``: the CT operator of every slice; ``c = mean(A^T 1)``; isotropic TV with
forward differences, zero at the far edges; ``w = z_weight``; ``x >= 0`` when ``nonneg``) by the preconditioned
Chambolle-Pock of ``medrecon.baselines.ct.tv_pdhg``. With ``z_weight = 0`` the slices decouple and the iterates
are ``tv_pdhg``'s. ``lam`` defaults to ``lam_rel`` times the volume's scale: the 99.5th percentile of |FBP| over
every voxel (of ``A^T y / A^T 1`` when ``op`` has no geometry), one weight for the whole volume.
"""
from __future__ import annotations

import math

import torch

from operators import LinearOperator

from .ct import divergence_2d, fbp, gradient_2d, pdhg_tv

__all__ = ["divergence_3d", "gradient_3d", "tv_3d", "volume_scale"]


def gradient_3d(x: torch.Tensor, z_weight: float = 1.0) -> torch.Tensor:
    """``(w D_z, D_y, D_x) x``: forward differences over the last three dims (zero at the far edge), the z one
    times ``w``; ``(..., Z, H, W) -> (3, ..., Z, H, W)``."""
    gz = torch.zeros_like(x)
    gz[..., :-1, :, :] = z_weight * (x[..., 1:, :, :] - x[..., :-1, :, :])
    return torch.cat([gz[None], gradient_2d(x)])


def divergence_3d(g: torch.Tensor, z_weight: float = 1.0) -> torch.Tensor:
    """Negative adjoint of ``gradient_3d``: ``<gradient_3d(x, w), g> = -<x, divergence_3d(g, w)>``."""
    gz = g[0]
    dz = torch.zeros_like(gz)
    dz[..., 0, :, :] = gz[..., 0, :, :]
    dz[..., 1:-1, :, :] = gz[..., 1:-1, :, :] - gz[..., :-2, :, :]
    dz[..., -1, :, :] = -gz[..., -2, :, :]
    return divergence_2d(g[1:]) + z_weight * dz


def volume_scale(y: torch.Tensor, op: LinearOperator) -> float:
    """The 99.5th percentile of |FBP| over the whole volume (of ``A^T y / A^T 1`` without a geometry)."""
    if getattr(op, "geometry", None) is not None:
        ref = fbp(y, op)
    else:
        back = op.adjoint(y)
        ref = back / op.adjoint(op(torch.ones_like(back))).clamp_min(1e-12)
    flat = ref.abs().flatten().float()
    k = min(flat.numel(), max(1, math.ceil(0.995 * flat.numel())))
    return max(float(flat.kthvalue(k).values), 1e-12)


def tv_3d(y: torch.Tensor, op: LinearOperator, lam: float | None = None, lam_rel: float = 3e-2,
          z_weight: float = 1.0, iters: int = 300, nonneg: bool = True,
          x0: torch.Tensor | None = None) -> torch.Tensor:
    """3D-TV least squares of one volume (module docstring): sinograms ``y`` ``(Z, views, det)`` of its ``Z``
    slices (in order) -> ``(Z, H, W)``. ``z_weight`` scales the difference between neighbouring slices against
    the in-plane ones (e.g. the pixel size over the slice spacing); ``lam`` (image units) defaults to
    ``lam_rel * volume_scale(y, op)``."""
    if y.ndim != 3:
        raise ValueError(f"tv_3d needs the sinograms of one volume (Z, views, det), got shape {tuple(y.shape)}")
    if z_weight < 0:
        raise ValueError(f"z_weight must be non-negative, got {z_weight}")
    if lam is None:
        lam = lam_rel * volume_scale(y, op)
    return pdhg_tv(y, op, lam, iters, lambda x: gradient_3d(x, z_weight), lambda g: divergence_3d(g, z_weight),
                   gradient_col_sum=4.0 + 2.0 * z_weight, gradient_row_sum=2.0 * max(1.0, z_weight),
                   nonneg=nonneg, x0=x0)
