"""Classical CT reconstructions, the yardsticks for the diffusion samplers.

Every reconstructor has the signature ``recon(y, op, **options) -> image``: ``y`` is a sinogram
``(*batch, views, det)``, ``op`` a ``operators.ct.CTProjector`` (or any real ``LinearOperator`` for the iterative
methods), and the result has shape ``(*batch, H, W)``; batch entries (images, slices of a volume) are
reconstructed independently.

Defaults (chosen for 2-180-view data of images scaled to about [0, 1]):

- ``fbp``: ramp filter (``filter_name`` in ramp, shepp-logan, cosine, hamming, hann); Kak & Slaney's FBP,
  weighted FBP for full-scan fan beam.
- ``cgls``: 30 conjugate-gradient iterations on ``A^T A x = A^T y`` from zero (early stopping regularises).
- ``sirt``: 100 iterations of ``x <- x + C A^T R (y - A x)`` (``R``, ``C``: inverse row / column sums),
  non-negative.
- ``tv_pdhg``: diagonally preconditioned Chambolle-Pock on ``||A x - y||^2 / (2 c) + lam * TV(x)`` with
  ``c = mean(A^T 1)`` (isotropic TV), non-negative, 300 iterations, ``lam = 3e-3 * scale`` where ``scale`` is the
  99.5th percentile of the FBP (of ``A^T y / A^T 1`` when ``op`` has no geometry).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from operators import LinearOperator, cg
from operators.ct_fbp import fbp as _fbp

__all__ = ["RECONSTRUCTORS", "cgls", "divergence_2d", "fbp", "gradient_2d", "pdhg_tv", "sirt", "tv_pdhg"]


def _image_batch_dims(y: torch.Tensor) -> int:
    return y.ndim - 2


def fbp(y: torch.Tensor, op: LinearOperator, filter_name: str = "ramp") -> torch.Tensor:
    """Filtered back-projection with the chosen filter (``op`` must carry a ``geometry``)."""
    geometry = getattr(op, "geometry", None)
    if geometry is None:
        raise TypeError(f"fbp needs a CT projector with a geometry, got {op!r}")
    return _fbp(y, geometry, filter_name)


def cgls(y: torch.Tensor, op: LinearOperator, iters: int = 30, damping: float = 0.0,
         x0: torch.Tensor | None = None) -> torch.Tensor:
    """Least squares by CG on the normal equations ``(A^T A + damping I) x = A^T y``, ``iters`` steps."""
    rhs = op.adjoint(y)
    return cg(op.normal, rhs, x0=x0, iters=iters, damping=damping, batch_dims=_image_batch_dims(y))


def sirt(y: torch.Tensor, op: LinearOperator, iters: int = 100, nonneg: bool = True,
         x0: torch.Tensor | None = None) -> torch.Tensor:
    """Simultaneous iterative reconstruction: ``x <- x + C A^T R (y - A x)`` with ``R = 1 / A 1``, ``C = 1 / A^T 1``."""
    back = op.adjoint(y)
    row = op(torch.ones_like(back[(0,) * (back.ndim - 2)]))
    col = op.adjoint(torch.ones_like(row))
    inv_row = torch.where(row > 0, 1.0 / row.clamp_min(1e-12), torch.zeros_like(row))
    inv_col = torch.where(col > 0, 1.0 / col.clamp_min(1e-12), torch.zeros_like(col))
    x = torch.zeros_like(back) if x0 is None else x0.clone()
    for _ in range(iters):
        x = x + inv_col * op.adjoint(inv_row * (y - op(x)))
        if nonneg:
            x = x.clamp_min(0)
    return x


def gradient_2d(x: torch.Tensor) -> torch.Tensor:
    """Forward differences over the last two dims (zero at the far edge), shape ``(2, *x.shape)``."""
    gy = torch.zeros_like(x)
    gx = torch.zeros_like(x)
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([gy, gx])


def divergence_2d(g: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of ``gradient_2d``: ``<gradient_2d(x), g> = -<x, divergence_2d(g)>``."""
    gy, gx = g[0], g[1]
    dy = torch.zeros_like(gy)
    dx = torch.zeros_like(gx)
    dy[..., 0, :] = gy[..., 0, :]
    dy[..., 1:-1, :] = gy[..., 1:-1, :] - gy[..., :-2, :]
    dy[..., -1, :] = -gy[..., -2, :]
    dx[..., :, 0] = gx[..., :, 0]
    dx[..., :, 1:-1] = gx[..., :, 1:-1] - gx[..., :, :-2]
    dx[..., :, -1] = -gx[..., :, -2]
    return dy + dx


def _image_scale(y: torch.Tensor, op: LinearOperator, back: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """Per-sample intensity scale: the 99.5th percentile of |FBP| (or of ``A^T y / A^T 1``)."""
    ref = fbp(y, op) if getattr(op, "geometry", None) is not None else back / col.clamp_min(1e-12)
    flat = ref.abs().reshape(*ref.shape[:-2], -1)
    return torch.quantile(flat.float(), 0.995, dim=-1).to(y.dtype)[..., None, None].clamp_min(1e-12)


def tv_pdhg(y: torch.Tensor, op: LinearOperator, lam: float | torch.Tensor | None = None, iters: int = 300,
            nonneg: bool = True, x0: torch.Tensor | None = None, lam_rel: float = 3e-3) -> torch.Tensor:
    """TV-regularised least squares by diagonally preconditioned Chambolle-Pock (PDHG, Pock & Chambolle 2011).

    Minimises ``||A x - y||^2 / (2 c) + lam * TV(x)`` (isotropic TV; ``x >= 0`` when ``nonneg``), where
    ``c = mean(A^T 1)`` makes ``lam`` independent of the number of views and the pixel size. Step sizes are the
    inverse absolute row sums (dual) and column sums (primal) of ``K = [A / sqrt(c); grad]``, which converge
    without an operator norm. ``lam`` defaults to ``lam_rel`` times the image scale (module docstring).
    """
    back = op.adjoint(y)
    col = op.adjoint(op(torch.ones_like(back)))  # per sample: operators may differ along the batch (planned views)
    if lam is None:
        lam = lam_rel * _image_scale(y, op, back, col)
    return pdhg_tv(y, op, lam, iters, gradient_2d, divergence_2d, nonneg=nonneg, x0=x0)


def pdhg_tv(y: torch.Tensor, op: LinearOperator, lam: float | torch.Tensor, iters: int,
            gradient: Callable[[torch.Tensor], torch.Tensor], divergence: Callable[[torch.Tensor], torch.Tensor],
            gradient_col_sum: float = 4.0, gradient_row_sum: float = 2.0, nonneg: bool = True,
            x0: torch.Tensor | None = None) -> torch.Tensor:
    """The preconditioned PDHG of ``tv_pdhg`` for any finite-difference ``gradient`` ``x -> (k, *x.shape)``
    (isotropic: the ``k`` components of a voxel share one dual ball of radius ``lam``), its negative adjoint
    ``divergence`` and the largest absolute column and row sums of its matrix (``gradient_2d``: 4 and 2), which
    set the primal and the dual steps."""
    back = op.adjoint(y)
    row = op(torch.ones_like(back))  # per sample, as in ``tv_pdhg``
    col = op.adjoint(torch.ones_like(row))
    c = float(col.mean())
    scale_op = c ** -0.5
    sigma_data = 1.0 / (scale_op * row).clamp_min(1e-12)
    sigma_tv = 1.0 / gradient_row_sum
    tau = 1.0 / (scale_op * col + gradient_col_sum)
    y_n = y * scale_op
    x = torch.zeros_like(back) if x0 is None else x0.clone()
    x_bar = x.clone()
    p = torch.zeros_like(y)
    q = torch.zeros_like(gradient(x))
    for _ in range(iters):
        p = (p + sigma_data * (scale_op * op(x_bar) - y_n)) / (1 + sigma_data)
        q = q + sigma_tv * gradient(x_bar)
        q = q / torch.clamp(q.norm(dim=0) / lam, min=1.0)
        x_new = x - tau * (scale_op * op.adjoint(p) - divergence(q))
        if nonneg:
            x_new = x_new.clamp_min(0)
        x_bar = 2 * x_new - x
        x = x_new
    return x


RECONSTRUCTORS: dict[str, Callable[..., torch.Tensor]] = {
    "fbp": fbp,
    "cgls": cgls,
    "sirt": sirt,
    "tv": tv_pdhg,
}
