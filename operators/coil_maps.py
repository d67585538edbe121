"""Coil sensitivity estimation from the fully sampled centre (calibration region) of undersampled k-space.

``espirit_maps`` is ESPIRiT (Uecker et al., MRM 2014) on a rectangular calibration region: all fully sampled centre
columns by ``calib_height`` readout rows, so the 5-10 centre lines of fastMRI's masks at 8x/4x suffice. It is torch
only (batched, any device). ``lowres_maps`` is a cheaper estimate: windowed calibration data -> low-resolution coil
images -> divided by their root sum of squares.

k-space is ``(*batch, C, H, W)`` in the centred layout of :func:`operators.mri.fft2c` (DC at ``(H // 2, W // 2)``,
phase encoding along ``W``); maps have the same shape.
"""
from __future__ import annotations

import math

import torch

from .mri import ifft2c

__all__ = [
    "calibration_kernels",
    "calibration_region",
    "calibration_window",
    "center_columns",
    "espirit_maps",
    "espirit_operator_rows",
    "lowres_maps",
]


def _check_calib(kspace: torch.Tensor, calib_width: int) -> None:
    if kspace.ndim < 3:
        raise ValueError(f"k-space must be (*batch, C, H, W), got shape {tuple(kspace.shape)}")
    if not 0 < calib_width <= min(kspace.shape[-2:]):
        raise ValueError(f"calib_width {calib_width} must lie in [1, {min(kspace.shape[-2:])}]")


def calibration_window(shape: tuple[int, int], calib_width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Separable Hann window of side ``calib_width`` centred on DC (``(H // 2, W // 2)``), zero outside; ``(H, W)``."""
    h, w = shape
    win = torch.hann_window(calib_width + 2, periodic=False, dtype=torch.float64, device=device)[1:-1]
    out = []
    for n in (h, w):
        line = torch.zeros(n, dtype=torch.float64, device=device)
        start = n // 2 - calib_width // 2
        line[start : start + calib_width] = win
        out.append(line)
    return (out[0][:, None] * out[1][None, :]).to(torch.float32)


def lowres_maps(kspace: torch.Tensor, calib_width: int = 24, eps: float = 0.05) -> torch.Tensor:
    """Low-resolution coil maps ``S_c = x_c / max(RSS(x), eps * max RSS)`` with ``x_c`` the coil images of the
    Hann-windowed ``calib_width x calib_width`` centre of k-space.

    Args:
        kspace: ``(*batch, C, H, W)`` complex, undersampled; the calibration square must be fully sampled.
        calib_width: side of the calibration square (at most the number of fully sampled centre lines).
        eps: floor of the RSS relative to its maximum (keeps the background from amplifying noise).

    Returns:
        Maps ``(*batch, C, H, W)`` with ``sum_c |S_c|^2 = 1`` wherever the RSS exceeds the floor.
    """
    _check_calib(kspace, calib_width)
    window = calibration_window(tuple(kspace.shape[-2:]), calib_width, kspace.device)
    images = ifft2c(kspace * window.to(kspace.real.dtype))
    rss = images.abs().square().sum(dim=-3, keepdim=True).sqrt()
    floor = eps * rss.amax(dim=(-2, -1), keepdim=True)
    return images / torch.maximum(rss, floor)


def center_columns(kspace: torch.Tensor) -> int:
    """Width ``n`` of the widest centred block of columns ``W // 2 - n // 2 ... W // 2 - n // 2 + n - 1`` (the block
    :func:`calibration_region` takes) that is sampled in every slice of ``kspace`` ``(*batch, C, H, W)``; a column is
    sampled where any coil or row is non-zero. 0 when the DC column is not sampled."""
    cols = (kspace != 0).any(dim=-2).any(dim=-2).reshape(-1, kspace.shape[-1]).all(dim=0).tolist()
    w, n = len(cols), 0
    while n < w and all(cols[w // 2 - (n + 1) // 2 : w // 2 - (n + 1) // 2 + n + 1]):
        n += 1
    return n


def calibration_region(kspace: torch.Tensor, calib_width: int, calib_height: int) -> torch.Tensor:
    """The centred ``calib_height x calib_width`` block of k-space: rows ``H // 2 - calib_height // 2 + [0, ch)``,
    columns ``W // 2 - calib_width // 2 + [0, cw)``; ``(*batch, C, H, W) -> (*batch, C, ch, cw)`` (a view)."""
    h, w = kspace.shape[-2:]
    top, left = h // 2 - calib_height // 2, w // 2 - calib_width // 2
    return kspace[..., top : top + calib_height, left : left + calib_width]


def _kernel_shape(kernel_width: int | tuple[int, int], calib: tuple[int, int]) -> tuple[int, int]:
    """An int kernel is clamped to ``(n + 1) // 2`` along a side of ``n`` calibration samples (so the kernel fits
    at least as many positions as it is wide); a tuple is taken as is and must fit the region."""
    if isinstance(kernel_width, int):
        if kernel_width < 1:
            raise ValueError(f"kernel_width must be >= 1, got {kernel_width}")
        return min(kernel_width, (calib[0] + 1) // 2), min(kernel_width, (calib[1] + 1) // 2)
    kh, kw = (int(k) for k in kernel_width)
    if not (0 < kh <= calib[0] and 0 < kw <= calib[1]):
        raise ValueError(f"kernel {kh}x{kw} must fit the {calib[0]}x{calib[1]} calibration region "
                         f"(kernel width <= calibration width)")
    return kh, kw


def calibration_kernels(calib: torch.Tensor, kernel: tuple[int, int], thresh: float) -> torch.Tensor:
    """Projector onto ESPIRiT's signal subspace of the calibration (Hankel) matrix.

    The calibration matrix has one row per ``kh x kw`` patch position inside the region (all coils, flattened as
    ``(C, kh, kw)``); its right singular vectors with singular value above ``thresh * s_max`` span the signal
    subspace. Computed from the Gram matrix in double precision.

    Args:
        calib: ``(B, C, ch, cw)`` calibration region.
        kernel: ``(kh, kw)`` with ``kh <= ch`` and ``kw <= cw``.
        thresh: relative singular-value threshold.

    Returns:
        ``P = sum_n w_n w_n^H`` ``(B, C*kh*kw, C*kh*kw)`` complex128, ``w_n`` the kept kernels (rows of ``V^H``).
    """
    b, c = calib.shape[:2]
    kh, kw = kernel
    patches = calib.to(torch.complex128).unfold(-2, kh, 1).unfold(-2, kw, 1)  # (B, C, ph, pw, kh, kw)
    rows = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * kh * kw)
    gram = rows.mH @ rows  # = V diag(s^2) V^H
    power, vectors = torch.linalg.eigh(gram)
    singular = power.clamp_min(0).sqrt()
    keep = (singular > thresh * singular[:, -1:]).to(vectors.dtype)
    # rows of V^H are conj(V[:, n]): sum_n w_n w_n^H = conj(V diag(keep) V^H)
    return ((vectors * keep[:, None, :]) @ vectors.mH).conj()


def espirit_operator_rows(
    projector: torch.Tensor, coils: int, kernel: tuple[int, int], shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of ESPIRiT's image-domain operator ``G(r) = (1/K) sum_n g_n(r) g_n(r)^H`` (``g_n`` = centred
    inverse DFT of kernel ``n`` zero-padded to ``(H, W)``, scaled by ``sqrt(HW)``; ``K = kh kw``), whose
    eigenvector of eigenvalue 1 is the coil sensitivity vector at pixel ``r``.

    ``G`` is a trigonometric polynomial: ``G(r) = (1/K) sum_d A(d) exp(2 pi i d.r / N)`` over kernel lags
    ``d = k - k'`` with ``A(d) = sum_{k - k' = d} P[(., k), (., k')]`` (``r`` centred on ``(H // 2, W // 2)``).
    This returns ``B(dh, r_w) = (1/K) sum_dw A(dh, dw) exp(2 pi i dw r_w / W)`` and ``E(r_h, dh)`` so that
    ``G(r_h, r_w) = sum_dh E(r_h, dh) B(dh, r_w)``, which is evaluated a few rows at a time.

    Args:
        projector: ``(B, C*kh*kw, C*kh*kw)`` from :func:`calibration_kernels`.
        coils, kernel, shape: ``C``, ``(kh, kw)``, ``(H, W)``.

    Returns:
        ``B`` ``(B, 2kh-1, W, C, C)`` and ``E`` ``(H, 2kh-1)``, complex64.
    """
    kh, kw = kernel
    h, w = shape
    # P[(c, kh, kw), (c', kh', kw')] -> (B, C, C', kh, kh', kw, kw'); torch.diagonal(offset=o) picks [i, i + o],
    # the lag d = k - k' = -o, summed over the lags along H (-> (B, C, C', 2kh-1, kw, kw')), then along W
    p = projector.reshape(-1, coils, kh, kw, coils, kh, kw).permute(0, 1, 4, 2, 5, 3, 6)
    lag_h = torch.stack([torch.diagonal(p, -d, 3, 4).sum(-1) for d in range(1 - kh, kh)], dim=3)
    lags = torch.stack([torch.diagonal(lag_h, -d, 4, 5).sum(-1) for d in range(1 - kw, kw)], dim=4)
    device = projector.device

    def phasor(n: int, k: int) -> torch.Tensor:
        r = torch.arange(n, dtype=torch.float64, device=device) - n // 2
        d = torch.arange(1 - k, k, dtype=torch.float64, device=device)
        return torch.polar(torch.ones((), dtype=torch.float64, device=device), 2 * math.pi * r[:, None] * d / n)

    rows = torch.einsum("sxyab,wb->sawxy", lags, phasor(w, kw)) / (kh * kw)
    return rows.to(torch.complex64), phasor(h, kh).to(torch.complex64)


def espirit_maps(
    kspace: torch.Tensor,
    calib_width: int = 24,
    calib_height: int | None = 64,
    kernel_width: int | tuple[int, int] = 6,
    thresh: float = 0.02,
    crop: float = 0.95,
    chunk_pixels: int = 16384,
) -> torch.Tensor:
    """ESPIRiT coil maps from a rectangular calibration region of undersampled k-space.

    Steps per slice: calibration matrix of all kernel-sized patches in the centred ``calib_height x calib_width``
    region, its right singular vectors above ``thresh * s_max`` (:func:`calibration_kernels`), the image-domain
    matrices ``G(r)`` ``(C, C)`` per pixel (:func:`espirit_operator_rows`), and per pixel the eigenvector of the
    largest eigenvalue (``torch.linalg.eigh``), phase-referenced to coil 0 and set to zero where that eigenvalue is
    at most ``crop`` (sigpy's and BART's conventions). With a square region it matches
    ``sigpy.mri.app.EspiritCalib`` (which uses power iterations) to float32 rounding.

    Args:
        kspace: ``(C, H, W)`` or ``(*batch, C, H, W)`` complex; the ``calib_width`` centre columns (from
            ``W // 2 - calib_width // 2``) must be fully sampled, e.g. ``mask.center_lines`` of a fastMRI mask.
        calib_width: calibration columns (phase encodes).
        calib_height: calibration rows along the fully sampled readout, capped at ``H`` (``None``: all ``H`` rows).
        kernel_width: kernel side; an int is clamped to ``(n + 1) // 2`` along a calibration side of ``n``
            (6x6 kernels at >= 11 lines, 6x5 at 10 lines, 6x3 at 5 lines); ``(kh, kw)`` is used as given.
        thresh: singular-value threshold relative to the largest.
        crop: eigenvalue threshold in ``(0, 1)`` below which a pixel's maps are zero (outside the object).
        chunk_pixels: pixels per batched eigen-decomposition (memory ``~ chunk_pixels * C^2 * 8`` bytes).

    Returns:
        Maps of the same shape, dtype and device as ``kspace``; unit norm over coils where not cropped.
    """
    _check_calib(kspace, calib_width)
    c, h, w = kspace.shape[-3:]
    height = h if calib_height is None else min(int(calib_height), h)
    if height < 1:
        raise ValueError(f"calib_height must be >= 1, got {calib_height}")
    kernel = _kernel_shape(kernel_width, (height, calib_width))
    flat = kspace.reshape(-1, c, h, w)
    calib = calibration_region(flat, calib_width, height)
    empty = ~(calib != 0).any(dim=-2).any(dim=-2).all(dim=0)
    if bool(empty.any()):
        cols = (torch.nonzero(empty).flatten() + w // 2 - calib_width // 2).tolist()
        raise ValueError(f"calibration columns {cols} are not sampled: calib_width {calib_width} exceeds the fully "
                         "sampled centre (use operators.coil_maps.center_columns)")
    projector = calibration_kernels(calib, kernel, thresh)
    rows, phasor = espirit_operator_rows(projector, c, kernel, (h, w))
    step = max(1, chunk_pixels // w)
    maps = torch.zeros(flat.shape[0], h, w, c, dtype=torch.complex64, device=kspace.device)
    for s in range(flat.shape[0]):
        for top in range(0, h, step):
            gram = torch.einsum("awxy,ha->hwxy", rows[s], phasor[top : top + step])
            values, vectors = torch.linalg.eigh(gram)
            vec = vectors[..., -1]
            ref = vec[..., :1]
            vec = vec * (ref.conj() / ref.abs().clamp_min(torch.finfo(torch.float32).tiny))
            maps[s, top : top + step] = vec * (values[..., -1:] > crop)
    out = maps.permute(0, 3, 1, 2).reshape(kspace.shape).to(kspace.dtype)
    if not bool((out != 0).any()):
        raise ValueError(
            f"ESPIRiT found no sensitivities: every eigenvalue is below crop={crop} (a {height}x{calib_width} "
            f"calibration region with {kernel[0]}x{kernel[1]} kernels); sample more centre lines, lower crop or "
            "kernel_width, or use lowres_maps"
        )
    return out
