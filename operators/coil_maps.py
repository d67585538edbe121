"""Coil sensitivity estimation from the fully sampled centre (calibration region) of undersampled k-space.

``espirit_maps`` wraps ``sigpy.mri.app.EspiritCalib`` (CPU via numpy; CUDA via cupy, zero-copy through DLPack,
when cupy is installed). ``lowres_maps`` is a batched torch estimate: windowed calibration data -> low-resolution
coil images -> divided by their root sum of squares; it runs on any torch device and is orders of magnitude faster.
k-space is ``(*batch, C, H, W)`` in the centred layout of :func:`operators.mri.fft2c`; maps have the same shape.
"""
from __future__ import annotations

import torch

from .mri import ifft2c

__all__ = ["calibration_window", "espirit_maps", "lowres_maps"]


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


def espirit_maps(
    kspace: torch.Tensor,
    calib_width: int = 24,
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
) -> torch.Tensor:
    """ESPIRiT maps (``sigpy.mri.app.EspiritCalib``) from the ``calib_width`` centre of undersampled k-space.

    Args:
        kspace: ``(C, H, W)`` or ``(B, C, H, W)`` complex; each slice is calibrated on its own.
        calib_width, thresh, kernel_width, crop, max_iter: EspiritCalib's parameters (its defaults).

    Returns:
        Maps of the same shape, dtype and device as ``kspace``. On CUDA with cupy installed sigpy runs on the GPU
        and data cross through DLPack without copies; otherwise the slice is computed on the CPU.
    """
    import sigpy as sp
    from sigpy.mri.app import EspiritCalib

    _check_calib(kspace, calib_width)
    if kspace.ndim == 4:
        return torch.stack([espirit_maps(k, calib_width, thresh, kernel_width, crop, max_iter) for k in kspace])
    if kspace.ndim != 3:
        raise ValueError(f"k-space must be (C, H, W) or (B, C, H, W), got shape {tuple(kspace.shape)}")
    params = {"calib_width": calib_width, "thresh": thresh, "kernel_width": kernel_width, "crop": crop,
              "max_iter": max_iter, "show_pbar": False}
    if kspace.is_cuda:
        try:
            import cupy
        except ImportError:
            cupy = None
        if cupy is not None:
            with cupy.cuda.Device(kspace.device.index or 0):
                ksp = cupy.from_dlpack(kspace.detach().contiguous())
                maps = EspiritCalib(ksp, device=sp.Device(kspace.device.index or 0), **params).run()
                return _nonzero(torch.from_dlpack(maps), calib_width, kernel_width).to(kspace.dtype)
    maps = torch.from_numpy(EspiritCalib(kspace.detach().cpu().numpy(), **params).run())
    return _nonzero(maps, calib_width, kernel_width).to(device=kspace.device, dtype=kspace.dtype)


def _nonzero(maps: torch.Tensor, calib_width: int, kernel_width: int) -> torch.Tensor:
    if not bool((maps != 0).any()):
        raise ValueError(
            f"ESPIRiT found no sensitivities: a {calib_width}x{calib_width} calibration region is too small for "
            f"kernel_width={kernel_width}; sample more centre lines, lower kernel_width, or use lowres_maps"
        )
    return maps
