"""Seeded k-space sampling masks with fastMRI semantics (1D column masks) and 2D patterns.

Every function draws from the ``torch.Generator`` it is given and returns a :class:`Mask`: a boolean tensor
(``(W,)`` for column masks, ``(H, W)`` for 2D masks; ``True`` = sampled) plus its exact acceleration and the size of
the fully sampled centre. Apply masks with :class:`operators.mri.Subsample`, which leaves unsampled entries ``+0``.

1D masks follow ``fastmri.data.subsample``: the centre block holds ``round(W * center_fraction)`` columns starting at
``(W - n_low + 1) // 2``; ``RandomMaskFunc`` keeps each other column with probability
``(W / R - n_low) / (W - n_low)``; ``EquiSpacedMaskFunc`` adds every ``R``-th column from a random offset;
``EquispacedMaskFractionFunc`` adjusts the spacing so the total is close to ``W / R``. The random mask's line count
varies with the seed (at 8x on 128 columns with centre fraction 0.04: 7 to 27 lines over 1000 seeds, i.e. 18x to 4.7x);
``random_fixed_mask`` keeps fastMRI's centre block and draws the other lines without replacement so that every
seed samples exactly ``round(W / R)`` lines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Mask",
    "acceleration",
    "center_mask",
    "default_center_fraction",
    "equispaced_fraction_mask",
    "equispaced_mask",
    "poisson_disc_mask",
    "random_fixed_mask",
    "random_mask",
    "variable_density_mask",
]


@dataclass(frozen=True)
class Mask:
    """A sampling mask and what it achieves.

    Attributes:
        mask: bool tensor, ``(W,)`` (columns) or ``(H, W)``; ``True`` where k-space is sampled.
        acceleration: exact ratio ``mask.numel() / mask.sum()``.
        center_lines: side length of the fully sampled centre (columns for 1D masks, square side for 2D).
    """

    mask: torch.Tensor
    acceleration: float
    center_lines: int


def acceleration(mask: torch.Tensor) -> float:
    """Exact acceleration ``numel / number sampled`` of a boolean mask."""
    sampled = int(mask.sum())
    if sampled == 0:
        raise ValueError("mask samples nothing")
    return mask.numel() / sampled


def default_center_fraction(accel: float) -> float:
    """fastMRI's centre fraction for an acceleration: 0.08 at 4x, 0.04 at 8x (``0.32 / R`` in general)."""
    if accel <= 1:
        raise ValueError(f"acceleration must be > 1, got {accel}")
    return 0.32 / accel


def _seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _center(num_cols: int, center_fraction: float) -> tuple[torch.Tensor, int]:
    num_low = round(num_cols * center_fraction)
    mask = torch.zeros(num_cols, dtype=torch.bool)
    pad = (num_cols - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask, num_low


def center_mask(num_cols: int, center_fraction: float) -> torch.Tensor:
    """fastMRI's fully sampled centre block alone: ``round(num_cols * center_fraction)`` columns from
    ``(num_cols - n + 1) // 2``, ``(W,)`` bool (where planned masks start)."""
    return _center(num_cols, center_fraction)[0]


def _finish(mask: torch.Tensor, center: int) -> Mask:
    return Mask(mask, acceleration(mask), center)


def _check(num_cols: int, accel: float, center_fraction: float | None) -> float:
    if num_cols < 2:
        raise ValueError(f"need at least 2 columns, got {num_cols}")
    if accel <= 1:
        raise ValueError(f"acceleration must be > 1, got {accel}")
    frac = default_center_fraction(accel) if center_fraction is None else center_fraction
    if not 0 <= frac < 1 / accel:
        raise ValueError(f"center_fraction {frac} must lie in [0, 1/acceleration)")
    return frac


def random_mask(
    num_cols: int, accel: float, generator: torch.Generator, center_fraction: float | None = None
) -> Mask:
    """fastMRI ``RandomMaskFunc``: centre block plus independent columns; expected acceleration ``accel``."""
    frac = _check(num_cols, accel, center_fraction)
    mask, num_low = _center(num_cols, frac)
    prob = (num_cols / accel - num_low) / (num_cols - num_low)
    mask |= torch.rand(num_cols, generator=generator, dtype=torch.float64) < prob
    return _finish(mask, num_low)


def random_fixed_mask(
    num_cols: int, accel: float, generator: torch.Generator, center_fraction: float | None = None
) -> Mask:
    """fastMRI's centre block plus ``round(W / accel) - n_low`` other columns drawn uniformly without replacement:
    exactly ``round(W / accel)`` sampled columns for every seed (acceleration ``W / round(W / accel)``)."""
    frac = _check(num_cols, accel, center_fraction)
    mask, num_low = _center(num_cols, frac)
    extra = round(num_cols / accel) - num_low  # >= 0 since center_fraction < 1 / accel
    outside = (~mask).nonzero().flatten()
    mask[outside[torch.randperm(outside.numel(), generator=generator)[:extra]]] = True
    return _finish(mask, num_low)


def equispaced_mask(
    num_cols: int,
    accel: int,
    generator: torch.Generator,
    center_fraction: float | None = None,
    offset: int | None = None,
) -> Mask:
    """fastMRI ``EquiSpacedMaskFunc``: centre block plus every ``accel``-th column from a random offset in
    ``[0, accel)``; the achieved acceleration is a little below ``accel``."""
    if int(accel) != accel:
        raise ValueError(f"equispaced masks need an integer acceleration, got {accel}")
    accel = int(accel)
    frac = _check(num_cols, accel, center_fraction)
    mask, num_low = _center(num_cols, frac)
    if offset is None:
        offset = int(torch.randint(0, accel, (1,), generator=generator))
    mask[offset::accel] = True
    return _finish(mask, num_low)


def equispaced_fraction_mask(
    num_cols: int,
    accel: float,
    generator: torch.Generator,
    center_fraction: float | None = None,
    offset: int | None = None,
) -> Mask:
    """fastMRI ``EquispacedMaskFractionFunc``: the spacing ``R (n_low - W) / (n_low R - W)`` makes the total
    number of columns close to ``W / R`` (the masks of the public multi-coil data)."""
    frac = _check(num_cols, accel, center_fraction)
    mask, num_low = _center(num_cols, frac)
    spacing = accel * (num_low - num_cols) / (num_low * accel - num_cols)
    if offset is None:
        offset = int(torch.randint(0, max(round(spacing), 1), (1,), generator=generator))
    samples = np.around(np.arange(offset, num_cols - 1, spacing)).astype(np.int64)
    mask[torch.from_numpy(samples)] = True
    return _finish(mask, num_low)


def poisson_disc_mask(
    shape: tuple[int, int],
    accel: float,
    generator: torch.Generator,
    calib: int = 24,
    tol: float = 0.1,
) -> Mask:
    """Variable-density Poisson-disc 2D mask (``sigpy.mri.poisson``) with a ``calib x calib`` centre.

    The seed passed to sigpy is drawn from ``generator``; the acceleration is within ``tol`` of ``accel``.
    """
    from sigpy.mri import poisson

    pattern = poisson(tuple(shape), accel, calib=(calib, calib), dtype=np.float32, seed=_seed(generator), tol=tol)
    return _finish(torch.from_numpy(pattern != 0), calib)


def variable_density_mask(
    shape: tuple[int, int],
    accel: float,
    generator: torch.Generator,
    calib: int = 24,
    sigma: float = 0.25,
) -> Mask:
    """2D Gaussian variable-density mask: a fully sampled ``calib x calib`` centre plus points drawn without
    replacement with density ``exp(-r^2 / (2 sigma^2))`` (``r`` in units of the half-width), so that exactly
    ``round(H W / accel)`` entries are sampled."""
    h, w = shape
    total = round(h * w / accel)
    mask = torch.zeros(h, w, dtype=torch.bool)
    r0, c0 = (h - calib + 1) // 2, (w - calib + 1) // 2
    mask[r0 : r0 + calib, c0 : c0 + calib] = True
    remaining = total - int(mask.sum())
    if remaining < 0:
        raise ValueError(f"calibration region {calib}x{calib} alone exceeds {total} samples at accel={accel}")
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / (h / 2)
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / (w / 2)
    density = torch.exp(-(ky[:, None] ** 2 + kx[None, :] ** 2) / (2 * sigma**2)).flatten()
    density[mask.flatten()] = 0
    if remaining:
        picks = torch.multinomial(density, remaining, replacement=False, generator=generator)
        mask.view(-1)[picks] = True
    return _finish(mask, calib)
