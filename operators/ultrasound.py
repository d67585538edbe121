"""Ultrasound RF models: probe geometry, pulse-echo PSF convolution, scan-line selection, IQ demodulation and the
additive haze (source mixture) model; envelope detection and companding as differentiable transforms.

Conventions: a beamformed RF frame is ``(*batch, samples, lines)``: fast time (depth) along ``-2`` at the
sampling rate ``fs`` (axial spacing ``c / (2 fs)``), one scan line per element along ``-1`` (lateral spacing
``pitch``). RF is real; IQ is complex baseband. All linear maps are ``LinearOperator`` s with matched adjoints.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import LinearOperator
from .selection import SelectRows

__all__ = [
    "Demodulate",
    "Probe",
    "PulseEcho",
    "ScanLines",
    "SourceMixture",
    "analytic_signal",
    "bmode",
    "envelope",
    "equispaced_lines",
    "haze_mixture",
    "log_compress",
    "lowpass_fir",
    "mu_law_compress",
    "mu_law_expand",
    "pulse_echo_psf",
]


# ---------------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Probe:
    """A linear array: centre frequency ``fc`` (Hz), RF sampling rate ``fs`` (Hz), ``n_elements`` (one scan line
    each), element ``pitch`` (m), speed of sound ``c`` (m/s), fractional -6 dB bandwidth and transmit focus (m)."""

    fc: float = 5e6
    fs: float = 20e6
    n_elements: int = 64
    pitch: float = 0.3e-3
    c: float = 1540.0
    bandwidth: float = 0.6
    focus: float = 20e-3

    @property
    def dz(self) -> float:
        """Axial sample spacing in metres, ``c / (2 fs)`` (pulse-echo)."""
        return self.c / (2 * self.fs)

    @property
    def wavelength(self) -> float:
        return self.c / self.fc

    def depths(self, samples: int, t0: float = 0.0) -> torch.Tensor:
        """Depth in metres of each of ``samples`` RF samples (first sample at time ``t0`` s), float64."""
        return (t0 + torch.arange(samples, dtype=torch.float64) / self.fs) * self.c / 2


def _odd(n: float) -> int:
    return 2 * max(1, math.ceil(n)) + 1


def pulse_echo_psf(
    probe: Probe, samples: int, anchors: int = 4, f_number: float = 1.5, depth_of_field: float | None = None,
    t0: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian pulse-echo PSFs at ``anchors`` depths and their depth weights (for ``PulseEcho``).

    Axial: a Gaussian-modulated cosine at ``fc`` whose spectrum has the probe's -6 dB fractional bandwidth.
    Lateral: a Gaussian beam of FWHM ``lambda * f_number`` at the focus, widening as
    ``sqrt(1 + ((z - focus) / depth_of_field)^2)`` (default depth of field ``7 lambda f_number^2``).

    Returns:
        kernels ``(anchors, ka, kl)`` float64 (odd sizes, peak-normalised axial pulse), and weights
        ``(anchors, samples)``: linear interpolation between the anchor depths (each column sums to 1).
    """
    z = probe.depths(samples, t0)
    s_f = probe.bandwidth * probe.fc / (2 * math.sqrt(2 * math.log(2)))
    s_t = 1 / (2 * math.pi * s_f)
    ha = _odd(3 * s_t * probe.fs) // 2
    t = torch.arange(-ha, ha + 1, dtype=torch.float64) / probe.fs
    axial = torch.exp(-0.5 * (t / s_t) ** 2) * torch.cos(2 * math.pi * probe.fc * t)
    dof = depth_of_field or 7 * probe.wavelength * f_number**2
    z_anchor = torch.linspace(float(z[0]), float(z[-1]), anchors, dtype=torch.float64)
    fwhm = probe.wavelength * f_number * torch.sqrt(1 + ((z_anchor - probe.focus) / dof) ** 2)
    s_lat = fwhm / (2 * math.sqrt(2 * math.log(2))) / probe.pitch  # in lines
    hl = _odd(3 * float(s_lat.max())) // 2
    u = torch.arange(-hl, hl + 1, dtype=torch.float64)
    lateral = torch.exp(-0.5 * (u[None] / s_lat[:, None]) ** 2)
    kernels = axial[None, :, None] * lateral[:, None, :]
    if anchors == 1:
        return kernels, torch.ones(1, samples, dtype=torch.float64)
    pos = (z - z_anchor[0]) / (z_anchor[1] - z_anchor[0])
    weights = (1 - (pos[None] - torch.arange(anchors, dtype=torch.float64)[:, None]).abs()).clamp_min(0)
    return kernels, weights / weights.sum(0, keepdim=True)


# -------------------------------------------------------------------------------------------- linear operators


def _as_real_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(*batch, H, W)`` -> real ``(N, 1, H, W)`` (complex: real and imaginary parts stacked in the batch)."""
    parts = torch.view_as_real(x).movedim(-1, 0) if x.is_complex() else x[None]
    return parts.reshape(-1, 1, *x.shape[-2:]), x.is_complex()


def _from_real_batch(out: torch.Tensor, like_shape: torch.Size, was_complex: bool) -> torch.Tensor:
    h, w = out.shape[-2:]
    if was_complex:
        parts = out.reshape(2, *like_shape[:-2], h, w)
        return torch.complex(parts[0], parts[1])
    return out.reshape(*like_shape[:-2], h, w)


class PulseEcho(LinearOperator):
    """RF from a reflectivity map by the convolution model: ``y(z, l) = sum_k w_k(z) (h_k * r)(z, l)``.

    ``h_k`` are 2D PSFs (true convolution, output the size of the input, zero boundary), ``w_k(z)`` per-depth
    weights (one kernel with unit weights: a shift-invariant PSF; several: an axially varying PSF). Real kernels;
    complex inputs are convolved part by part.

    Args:
        kernels: ``(K, ka, kl)`` or ``(ka, kl)`` with odd ``ka``, ``kl``.
        weights: ``(K, samples)`` depth weights; None for a single kernel (any depth).
    """

    def __init__(self, kernels: torch.Tensor, weights: torch.Tensor | None = None):
        super().__init__()
        k = kernels[None] if kernels.ndim == 2 else kernels
        if k.ndim != 3 or k.shape[-1] % 2 == 0 or k.shape[-2] % 2 == 0:
            raise ValueError(f"kernels must be (K, ka, kl) with odd ka and kl, got {tuple(kernels.shape)}")
        if weights is not None and (weights.ndim != 2 or weights.shape[0] != k.shape[0]):
            raise ValueError(f"weights must be (K={k.shape[0]}, samples), got {tuple(weights.shape)}")
        if weights is None and k.shape[0] != 1:
            raise ValueError("several kernels need depth weights (K, samples)")
        self.register_buffer("kernels", k.flip(-1, -2).unsqueeze(1).contiguous())  # (K, 1, ka, kl), flipped
        self.register_buffer("weights", weights)
        self.padding = (k.shape[-2] // 2, k.shape[-1] // 2)

    def _weights(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.weights is None:
            return None
        if self.weights.shape[-1] != x.shape[-2]:
            raise ValueError(f"the depth weights cover {self.weights.shape[-1]} samples, the input has "
                             f"{x.shape[-2]}")
        return self.weights.to(x.real.dtype)[None, :, :, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, cplx = _as_real_batch(x)
        out = F.conv2d(flat, self.kernels.to(flat.dtype), padding=self.padding)
        w = self._weights(x)
        out = out if w is None else (out * w).sum(1, keepdim=True)
        return _from_real_batch(out, x.shape, cplx)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        flat, cplx = _as_real_batch(y)
        w = self._weights(y)
        flat = flat if w is None else flat * w
        out = F.conv_transpose2d(flat, self.kernels.to(flat.dtype), padding=self.padding)
        return _from_real_batch(out, y.shape, cplx)

    def __repr__(self) -> str:
        k, _, ka, kl = self.kernels.shape
        return f"PulseEcho({k} x {ka}x{kl})"


class ScanLines(SelectRows):
    """Scan-line subsampling: the acquired lines ``y = x[..., lines]`` of RF/IQ frames ``(*batch, samples,
    lines_total)``; the adjoint zero-fills the missing lines. Swap lines by type:
    ``A.with_factor(ScanLines, ScanLines(new, total))``."""

    def __init__(self, indices: Sequence[int] | torch.Tensor, total: int):
        super().__init__(indices, total, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.total:
            raise ValueError(f"expected {self.total} scan lines along dim -1, got {x.shape[-1]}")
        return super().forward(x)

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> ScanLines:
        """From a boolean line mask ``(lines_total,)``."""
        m = torch.as_tensor(mask).reshape(-1).to(torch.bool)
        return cls(torch.nonzero(m).reshape(-1), m.numel())

    @property
    def mask(self) -> torch.Tensor:
        """Boolean ``(lines_total,)`` mask of the acquired lines."""
        m = torch.zeros(self.total, dtype=torch.bool, device=self.indices.device)
        m[self.indices] = True
        return m

    def __repr__(self) -> str:
        return f"ScanLines({self.indices.numel()} of {self.total})"


def equispaced_lines(total: int, factor: int, offset: int | None = None) -> torch.Tensor:
    """Every ``factor``-th of ``total`` lines starting at ``offset`` (default: centred), as indices."""
    if factor < 1 or total < 1:
        raise ValueError(f"need total >= 1 and factor >= 1, got {total}, {factor}")
    start = ((total - 1) % factor) // 2 if offset is None else offset
    return torch.arange(start, total, factor)


def lowpass_fir(cutoff: float, fs: float, taps: int) -> torch.Tensor:
    """Hamming-windowed sinc low-pass FIR ``(taps,)`` float64 (odd ``taps``), cutoff in Hz, unit DC gain."""
    if taps % 2 == 0 or not 0 < cutoff < fs / 2:
        raise ValueError(f"need odd taps and 0 < cutoff < fs / 2, got taps={taps}, cutoff={cutoff}, fs={fs}")
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    h = torch.special.sinc(2 * cutoff / fs * n) * torch.hamming_window(taps, periodic=False, dtype=torch.float64)
    return h / h.sum()


class Demodulate(LinearOperator):
    """RF -> IQ: ``iq = decimate_d(lowpass(rf * exp(-2 pi i fc t)))`` along the fast-time axis ``-2``.

    Complex-linear on ``(*batch, samples, lines)`` (real RF is promoted); the adjoint upsamples by zero
    insertion, filters and remodulates. ``remodulate`` is the approximate inverse ``rf = 2 d Re(D^H iq)`` for RF
    within the filter's pass band.

    Args:
        fc, fs: centre and sampling frequency (Hz).
        samples: RF samples per line (fixes ``t``).
        cutoff: low-pass cutoff in Hz (default ``min(fc / 2, 0.45 fs / d)``).
        taps: odd FIR length.
        decimation: keep every ``d``-th baseband sample.
        t0: time of the first sample (s).
    """

    def __init__(self, fc: float, fs: float, samples: int, cutoff: float | None = None, taps: int = 31,
                 decimation: int = 1, t0: float = 0.0):
        super().__init__()
        if decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {decimation}")
        cut = cutoff if cutoff is not None else min(0.5 * fc, 0.45 * fs / decimation)
        t = t0 + torch.arange(samples, dtype=torch.float64) / fs
        self.register_buffer("phase", (-2 * math.pi * fc * t) % (2 * math.pi))
        self.register_buffer("fir", lowpass_fir(cut, fs, taps).flip(0).reshape(1, 1, taps, 1).contiguous())
        self.fc, self.fs, self.samples, self.decimation, self.cutoff = fc, fs, samples, decimation, cut

    def _carrier(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        real = x.real.dtype
        ph = self.phase.to(real)[:, None]
        return torch.complex(torch.cos(ph), sign * torch.sin(ph))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != self.samples:
            raise ValueError(f"expected {self.samples} RF samples along dim -2, got {x.shape[-2]}")
        base = (x if x.is_complex() else x.to(torch.promote_types(x.dtype, torch.complex64))) * self._carrier(x, 1)
        flat, _ = _as_real_batch(base)
        out = F.conv2d(flat, self.fir.to(flat.dtype), padding=(self.fir.shape[-2] // 2, 0))
        return _from_real_batch(out, base.shape, True)[..., :: self.decimation, :]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        shape = (*y.shape[:-2], self.samples, y.shape[-1])
        up = torch.zeros(shape, dtype=y.dtype, device=y.device)
        up[..., :: self.decimation, :] = y
        flat, _ = _as_real_batch(up)
        out = F.conv_transpose2d(flat, self.fir.to(flat.dtype), padding=(self.fir.shape[-2] // 2, 0))
        return _from_real_batch(out, up.shape, True) * self._carrier(y, -1)

    def remodulate(self, iq: torch.Tensor) -> torch.Tensor:
        """RF ``(*batch, samples, lines)`` from IQ: ``2 d Re(D^H iq)`` (real)."""
        return 2 * self.decimation * self.adjoint(iq).real

    def __repr__(self) -> str:
        return f"Demodulate(fc={self.fc:g}, fs={self.fs:g}, d={self.decimation})"


class SourceMixture(LinearOperator):
    """``y = sum_k w_k x_k`` for sources stacked along dim ``-3``: ``(*batch, K, H, W) -> (*batch, H, W)``.

    The additive haze model ``y = x + gamma h`` is ``SourceMixture([1, gamma])`` on ``stack([x, h], -3)``."""

    def __init__(self, weights: Sequence[float]):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(list(weights), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] != self.w.numel():
            raise ValueError(f"expected {self.w.numel()} sources along dim -3, got {x.shape[-3]}")
        return (self.w.to(x.real.dtype)[:, None, None] * x).sum(-3)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.w.to(y.real.dtype)[:, None, None] * y.unsqueeze(-3)

    def __repr__(self) -> str:
        return f"SourceMixture({[round(float(v), 4) for v in self.w]})"


def haze_mixture(gamma: float = 1.0) -> SourceMixture:
    """The additive haze model of dehazing: ``y = x + gamma h`` on ``stack([x, h], -3)``."""
    return SourceMixture([1.0, gamma])


# ------------------------------------------------------------------------------------ differentiable transforms


def analytic_signal(rf: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """``rf + i H{rf}`` along ``dim`` by the FFT (the definition of ``scipy.signal.hilbert``); complex."""
    n = rf.shape[dim]
    spec = torch.fft.fft(rf, dim=dim)
    h = torch.zeros(n, dtype=rf.dtype, device=rf.device)
    h[0] = 1
    if n % 2 == 0:
        h[n // 2] = 1
        h[1 : n // 2] = 2
    else:
        h[1 : (n + 1) // 2] = 2
    shape = [1] * rf.ndim
    shape[dim] = n
    return torch.fft.ifft(spec * h.reshape(shape), dim=dim)


def envelope(x: torch.Tensor, dim: int = -2, eps: float = 0.0) -> torch.Tensor:
    """Envelope: ``|analytic_signal(rf)|`` for real RF, ``|iq|`` for complex IQ. ``eps > 0`` keeps the gradient
    finite at zero (``sqrt(|.|^2 + eps^2)``)."""
    z = x if x.is_complex() else analytic_signal(x, dim)
    return (z.real**2 + z.imag**2 + eps**2).sqrt() if eps > 0 else z.abs()


def log_compress(env: torch.Tensor, dynamic_range_db: float = 60.0, reference: torch.Tensor | float | None = None,
                 ) -> torch.Tensor:
    """B-mode in dB: ``20 log10(env / reference)`` clipped to ``[-dynamic_range_db, 0]`` (reference: the max of
    each frame ``(*batch, H, W)`` when None)."""
    ref = env.amax((-2, -1), keepdim=True) if reference is None else torch.as_tensor(reference).to(env)
    floor = 10 ** (-dynamic_range_db / 20)
    return 20 * torch.log10((env / ref).clamp_min(floor)).clamp(-dynamic_range_db, 0.0)


def bmode(x: torch.Tensor, dynamic_range_db: float = 60.0, reference: torch.Tensor | float | None = None
          ) -> torch.Tensor:
    """B-mode in dB of RF or IQ frames ``(*batch, samples, lines)``: ``log_compress(envelope(x))``."""
    return log_compress(envelope(x), dynamic_range_db, reference)


def mu_law_compress(x: torch.Tensor, mu: float = 255.0) -> torch.Tensor:
    """``sign(x) ln(1 + mu |x|) / ln(1 + mu)`` for ``x`` in ``[-1, 1]`` (dehazing's companding, mu = 255)."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(y: torch.Tensor, mu: float = 255.0) -> torch.Tensor:
    """The inverse of ``mu_law_compress``: ``sign(y) ((1 + mu)^|y| - 1) / mu``."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
