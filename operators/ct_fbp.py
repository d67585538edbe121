"""Filtered back-projection for the geometries of ``ct_geometry`` (Kak & Slaney, ch. 3).

Parallel beam: ramp-filter each view along the detector, back-project pixel-driven with linear interpolation.
Fan beam (full 360-degree scans): weighted FBP; the equiangular detector pre-weights by ``R cos(gamma)`` and
filters with ``(gamma / sin gamma)^2 / 2`` times the ramp, the flat detector is rescaled to a virtual detector
through the isocentre, pre-weighted by ``R / sqrt(R^2 + s^2)`` and filtered with half the ramp; back-projection
weights by ``1 / L^2`` (equiangular) or ``1 / U^2`` (flat). The ramp is built from its band-limited spatial kernel
(Ram-Lak), which avoids the DC offset of a sampled ``|omega|``, and multiplied by a window in frequency.
This is a separate, pixel-driven back-projector (the textbook FBP), not the adjoint of the projector.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .ct_geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry

__all__ = ["FILTERS", "backproject_pixel_driven", "fbp", "filter_response", "filter_sinogram"]

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")

_CHUNK_ELEMENTS = 1 << 24


def _window(name: str, nu: np.ndarray) -> np.ndarray:
    """Apodisation at normalised frequency ``nu`` in cycles per sample, ``0 <= nu <= 0.5``."""
    if name == "ramp":
        return np.ones_like(nu)
    if name == "shepp-logan":
        return np.sinc(nu)
    if name == "cosine":
        return np.cos(np.pi * nu)
    if name == "hamming":
        return 0.54 + 0.46 * np.cos(2 * np.pi * nu)
    if name == "hann":
        return np.cos(np.pi * nu) ** 2
    raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}")


def _padded_length(n_det: int) -> int:
    return max(64, 1 << math.ceil(math.log2(2 * n_det)))


def filter_response(n_det: int, spacing: float, filter_name: str = "ramp", fan_angle_step: float | None = None
                    ) -> np.ndarray:
    """Real frequency response (``rfft`` layout, length ``n_pad // 2 + 1``) of the convolution kernel times ``spacing``.

    ``spacing`` is the detector sampling of the data being filtered (mm, or radians when ``fan_angle_step`` is
    given, which selects the equiangular fan kernel ``(n a / sin(n a))^2 / 2 * h(n a)``).
    """
    n_pad = _padded_length(n_det)
    n = np.concatenate([np.arange(0, n_pad // 2 + 1), np.arange(-(n_pad // 2) + 1, 0)]).astype(np.float64)
    kernel = np.zeros(n_pad)
    odd = (n.astype(np.int64) % 2) != 0
    kernel[0] = 1.0 / (4 * spacing**2)
    kernel[odd] = -1.0 / (np.pi * n[odd] * spacing) ** 2
    if fan_angle_step is not None:
        a = fan_angle_step
        ratio = np.ones(n_pad)
        nz = n != 0
        ratio[nz] = (n[nz] * a / np.sin(n[nz] * a)) ** 2
        kernel = 0.5 * kernel * ratio
    response = np.real(np.fft.rfft(kernel)) * spacing
    nu = np.fft.rfftfreq(n_pad)
    return response * _window(filter_name, nu)


def filter_sinogram(sino: torch.Tensor, response: np.ndarray) -> torch.Tensor:
    """Convolve each view ``(*batch, views, det)`` with the kernel whose response ``filter_response`` gave."""
    n_det = sino.shape[-1]
    n_pad = 2 * (response.shape[0] - 1)
    resp = torch.as_tensor(response, dtype=sino.dtype, device=sino.device)
    spec = torch.fft.rfft(sino, n=n_pad, dim=-1) * resp
    return torch.fft.irfft(spec, n=n_pad, dim=-1)[..., :n_det]


def _interp(q: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``q`` (``(B, V, n)``) at fractional indices ``pos`` (``(V, P)``); zero outside."""
    n = q.shape[-1]
    lo = torch.floor(pos)
    frac = (pos - lo).to(q.dtype)
    lo = lo.long()
    out = torch.zeros(q.shape[0], *pos.shape, dtype=q.dtype, device=q.device)
    for idx, w in ((lo, 1 - frac), (lo + 1, frac)):
        ok = (idx >= 0) & (idx < n)
        vals = torch.gather(q, 2, idx.clamp(0, n - 1).expand(q.shape[0], -1, -1))
        out = out + vals * (w * ok)
    return out


def backproject_pixel_driven(q: torch.Tensor, geometry: Geometry, weights: np.ndarray) -> torch.Tensor:
    """``sum_v weights[v] * W_v(x) * q_v(det(x))`` over views for every pixel; ``q`` is ``(*batch, views, det)``.

    ``W_v`` is 1 (parallel), ``1 / L^2`` (equiangular fan) or ``1 / U^2`` (flat fan).
    """
    h, w = geometry.image_size
    batch = q.shape[:-2]
    qb = q.reshape(-1, *q.shape[-2:])
    dev, dt = q.device, q.dtype
    px = geometry.pixel_size
    xs = (torch.arange(w, device=dev, dtype=torch.float64) - (w - 1) / 2) * px
    ys = ((h - 1) / 2 - torch.arange(h, device=dev, dtype=torch.float64)) * px
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    xx, yy = xx.reshape(1, -1), yy.reshape(1, -1)
    theta = torch.deg2rad(torch.tensor(geometry.angles_deg, dtype=torch.float64, device=dev))
    wts = torch.as_tensor(weights, dtype=torch.float64, device=dev)
    out = torch.zeros(qb.shape[0], h * w, dtype=dt, device=dev)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, qb.shape[0] * h * w))
    for start in range(0, len(theta), chunk):
        th = theta[start:start + chunk, None]
        cos, sin = torch.cos(th), torch.sin(th)
        along_u = xx * cos + yy * sin
        scale = wts[start:start + chunk, None].expand(-1, h * w)
        if isinstance(geometry, ParallelBeamGeometry):
            det = along_u
        else:
            along_e = -xx * sin + yy * cos + geometry.source_distance
            if geometry.detector == "equiangular":
                det = torch.atan2(along_u, along_e) * geometry.detector_distance
                scale = scale / (along_u**2 + along_e**2)
            else:
                det = along_u / along_e * geometry.detector_distance
                scale = scale / (along_e / geometry.source_distance) ** 2
        pos = (det - geometry.det_offset) / geometry.det_spacing + (geometry.n_det - 1) / 2
        vals = _interp(qb[:, start:start + chunk], pos)
        out = out + (vals * scale.to(dt)).sum(1)
    return out.reshape(*batch, h, w)


def _view_weights(angles_deg: tuple[float, ...], full_circle: float) -> np.ndarray:
    """Angular integration weights in radians: the median view spacing, halved where views cover more than once."""
    a = np.sort(np.deg2rad(np.asarray(angles_deg)))
    if a.size == 1:
        return np.full(1, full_circle / 2)
    step = float(np.median(np.diff(a)))
    coverage = a[-1] - a[0] + step
    return np.full(a.size, step * min(1.0, full_circle / coverage))


def parker_weights(angles_deg: tuple[float, ...], fan_angles: np.ndarray) -> np.ndarray | None:
    """Parker's short-scan weights ``(views, det)`` for a fan-beam arc shorter than 360 degrees, or None for a full
    scan: with ``beta`` the view angle from the first view and ``delta`` the half fan angle (rays ``gamma``),
    ``sin^2(pi/4 beta / (delta - gamma))`` up to ``beta = 2 (delta - gamma)``, 1 up to ``pi - 2 gamma``, then
    ``sin^2(pi/4 (pi + 2 delta - beta) / (delta + gamma))``; doubled, so that a ray measured twice sums to the
    full scan's 2. Rays the arc does not cover twice over its length (an arc shorter than ``pi + 2 delta``)
    keep the weights, which then do not sum to 2: the artefacts of an incomplete scan."""
    beta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    beta = beta - beta.min()
    step = float(np.median(np.diff(np.sort(beta)))) if beta.size > 1 else 0.0
    if beta.max() + step >= 2 * np.pi - 1e-9:
        return None
    gamma = np.asarray(fan_angles, dtype=np.float64)[None, :]
    delta = float(np.abs(gamma).max())
    b = beta[:, None]
    rise = np.sin(np.pi / 4 * b / np.maximum(delta - gamma, 1e-12)) ** 2
    fall = np.sin(np.pi / 4 * np.clip(np.pi + 2 * delta - b, 0, None) / np.maximum(delta + gamma, 1e-12)) ** 2
    w = np.where(b < 2 * (delta - gamma), rise, np.where(b <= np.pi - 2 * gamma, 1.0, fall))
    return 2 * w


def fbp(sino: torch.Tensor, geometry: Geometry, filter_name: str = "ramp") -> torch.Tensor:
    """Filtered back-projection of sinograms ``(*batch, views, det)`` to images ``(*batch, H, W)``.

    Fan-beam arcs shorter than 360 degrees get Parker's short-scan weights (``parker_weights``; exact from
    ``180 degrees + fan angle`` on). The result is in the image unit whose line integrals (in mm) gave ``sino``.
    """
    if isinstance(geometry, ParallelBeamGeometry):
        resp = filter_response(geometry.n_det, geometry.det_spacing, filter_name)
        q = filter_sinogram(sino, resp)
        return backproject_pixel_driven(q, geometry, _view_weights(geometry.angles_deg, np.pi))
    assert isinstance(geometry, FanBeamGeometry)
    parker = parker_weights(geometry.angles_deg, -geometry.fan_angles())  # Parker's gamma grows with the rotation
    if parker is not None:
        sino = sino * torch.as_tensor(parker, dtype=sino.dtype, device=sino.device)
    r, d = geometry.source_distance, geometry.detector_distance
    if geometry.detector == "equiangular":
        step = geometry.det_spacing / d
        gamma = torch.as_tensor(geometry.fan_angles(), dtype=sino.dtype, device=sino.device)
        pre = sino * (r * torch.cos(gamma))
        q = filter_sinogram(pre, filter_response(geometry.n_det, step, filter_name, fan_angle_step=step))
    else:
        s_iso = torch.as_tensor(geometry.det_coords() * r / d, dtype=sino.dtype, device=sino.device)
        pre = sino * (r / torch.sqrt(r**2 + s_iso**2))
        q = 0.5 * filter_sinogram(pre, filter_response(geometry.n_det, geometry.det_spacing * r / d, filter_name))
    return backproject_pixel_driven(q, geometry, _view_weights(geometry.angles_deg, 2 * np.pi))
