"""Adapters that put any network behind ``D(x, sigma) = E[x0 | x]`` in the VE/EDM variable ``x = x0 + sigma*eps``.

Network adapters (``(B, C, H, W)`` real tensors in and out):
  * ``VPDenoiser``: discrete-time VP networks ``net(x_vp, t)`` predicting eps, x0 or v, for any ``alphas_cumprod``.
    ``x_vp = x / sqrt(1 + sigma^2)``, ``alpha_bar = 1 / (1 + sigma^2)``; the (fractional) timestep is found by
    linear interpolation of ``t`` against ``log sigma_t`` with ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``.
  * ``VEDenoiser``: continuous VE networks ``net(x, sigma)`` predicting the score or x0.
  * ``EDMDenoiser``: EDM-preconditioned networks ``D = c_skip x + c_out F(c_in x, c_noise)``.
  * ``LearnedSigmaSplit``: the eps half of a network with a learned-variance output (``2C`` channels, ADM).
Units adapter: ``Rescaled`` (a denoiser trained on ``a x + b``, e.g. ``[-1, 1]`` for data in ``[0, 1]``).
Layout adapters: ``ComplexAsChannels`` (complex ``(B, H, W)`` <-> 2 real channels; the only place this packing
happens), ``ComplexParts`` (a real prior on the real and imaginary parts of complex images), ``AddChannel`` (real
``(B, H, W)`` <-> 1 channel) and ``SliceWise`` (a 2D prior on ``(B, D, H, W)``).
Grid adapters: ``PadToMultiple`` (grids the network cannot take) and ``SlidingWindow`` (a crop-trained network run
in overlapping windows of its training scale on larger grids).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..schedules import vp_alpha_bar_to_sigma
from .base import Denoiser, as_sigma

__all__ = [
    "AddChannel",
    "ComplexAsChannels",
    "ComplexParts",
    "EDMDenoiser",
    "LearnedSigmaSplit",
    "PadToMultiple",
    "Rescaled",
    "SliceWise",
    "SlidingWindow",
    "VEDenoiser",
    "VPDenoiser",
    "channels_to_complex",
    "complex_to_channels",
]

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bcast(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return s.reshape((-1,) + (1,) * (x.ndim - 1))


class VPDenoiser(nn.Module):
    """A discrete-time VP network ``net(x_vp, t) -> eps | x0 | v`` as a VE Tweedie denoiser.

    ``alphas_cumprod``: ``(T,)`` increasing noise with ``t``. ``prediction``: ``"eps"``, ``"x0"`` or ``"v"``
    (``v = sqrt(ab) eps - sqrt(1 - ab) x0``). ``round_timestep``: pass the nearest integer step instead of the
    interpolated fractional one (for networks whose embedding only accepts integers). Sigmas outside the table
    are clamped to its range for the timestep lookup; the conversion itself always uses the exact sigma.
    """

    def __init__(self, net: Network, alphas_cumprod: torch.Tensor, prediction: str = "eps",
                 round_timestep: bool = False):
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        self.net = net
        self.prediction = prediction
        self.round_timestep = round_timestep
        self.register_buffer("log_sigmas", vp_alpha_bar_to_sigma(alphas_cumprod).log(), persistent=False)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of each ``sigma`` ``(B,)`` by interpolation in log sigma."""
        ls = self.log_sigmas.to(sigma.device)
        q = sigma.to(torch.float64).clamp_min(1e-30).log().clamp(ls[0], ls[-1])
        idx = torch.searchsorted(ls, q).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        t = (idx - 1).to(torch.float64) + (q - lo) / (hi - lo)
        return t.round() if self.round_timestep else t

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = as_sigma(sigma, x)
        t = self.timestep(s).to(x.dtype)
        sb = _bcast(s, x)
        scale = (1 + sb**2).rsqrt()  # sqrt(alpha_bar)
        x_vp = x * scale
        out = self.net(x_vp, t)
        if self.prediction == "eps":
            return x - sb * out
        if self.prediction == "x0":
            return out
        return scale * x_vp - sb * scale * out  # sqrt(ab) x_vp - sqrt(1 - ab) v


class VEDenoiser(nn.Module):
    """A continuous VE network ``net(x, sigma) -> score | x0`` as a Tweedie denoiser (``D = x + sigma^2 score``).

    ``noise_input``: what the network is conditioned on, ``"sigma"`` or ``"log_sigma"``.
    """

    def __init__(self, net: Network, prediction: str = "score", noise_input: str = "sigma"):
        super().__init__()
        if prediction not in ("score", "x0"):
            raise ValueError(f"prediction must be 'score' or 'x0', got {prediction!r}")
        if noise_input not in ("sigma", "log_sigma"):
            raise ValueError(f"noise_input must be 'sigma' or 'log_sigma', got {noise_input!r}")
        self.net = net
        self.prediction = prediction
        self.noise_input = noise_input

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = as_sigma(sigma, x)
        out = self.net(x, s.log() if self.noise_input == "log_sigma" else s)
        return x + _bcast(s, x) ** 2 * out if self.prediction == "score" else out


class EDMDenoiser(nn.Module):
    """EDM preconditioning (Karras et al. 2022) around ``net(x_in, c_noise) -> F``.

    ``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``, ``c_in = 1 / sqrt(s^2 + sd^2)``,
    ``c_noise = c_noise_scale * log(s) / 4`` (EDM's ``log(s)/4``, scaled for sinusoidal timestep embeddings that
    expect DDPM-like step numbers). The network runs in its own parameter dtype; the output has ``x``'s dtype.
    """

    def __init__(self, net: nn.Module | Network, sigma_data: float, c_noise_scale: float = 1.0):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)
        self.c_noise_scale = float(c_noise_scale)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` for ``sigma`` ``(B,)``."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = (sigma**2 + sd2).rsqrt()
        c_noise = self.c_noise_scale * sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def raw(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The network output ``F`` (training target space) for ``x`` and ``sigma`` ``(B,)``."""
        _, _, c_in, c_noise = self.coefficients(sigma)
        dtype = next(iter(self.net.parameters())).dtype if isinstance(self.net, nn.Module) else x.dtype
        return self.net((_bcast(c_in, x) * x).to(dtype), c_noise.to(dtype)).to(x.dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = as_sigma(sigma, x)
        c_skip, c_out, _, _ = self.coefficients(s)
        return _bcast(c_skip, x) * x + _bcast(c_out, x) * self.raw(x, s)


class LearnedSigmaSplit(nn.Module):
    """``net(x, t) -> (B, 2C, H, W)`` (eps, then the learned variance interpolation) as ``net(x, t) -> eps``
    ``(B, C, H, W)``. The Tweedie estimate needs only eps; the variance half is dropped."""

    def __init__(self, net: Network):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(x, t)
        if out.shape[1] != 2 * x.shape[1]:
            raise ValueError(f"a learned-variance network returns 2 x {x.shape[1]} channels, got {out.shape[1]}")
        return out[:, : x.shape[1]]


class Rescaled(nn.Module):
    """A denoiser trained on ``u = scale * x + offset`` used on ``x``: ``D(x, s) = (D_u(scale x + offset,
    scale s) - offset) / scale`` (noise std scales with the data; e.g. ``scale=2, offset=-1`` for a network trained
    on ``[-1, 1]`` serving data in ``[0, 1]``)."""

    def __init__(self, denoiser: Denoiser, scale: float, offset: float = 0.0):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.denoiser = denoiser
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = as_sigma(sigma, x)
        return (self.denoiser(self.scale * x + self.offset, self.scale * s) - self.offset) / self.scale


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, H, W)`` -> real ``(B, 2, H, W)`` (real, imaginary)."""
    return torch.view_as_real(x).movedim(-1, 1).contiguous()


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``(B, 2, H, W)`` -> complex ``(B, H, W)``."""
    return torch.complex(x[:, 0].contiguous(), x[:, 1].contiguous())


class ComplexAsChannels(nn.Module):
    """A denoiser of real ``(B, 2, H, W)`` images used on complex ``(B, H, W)`` images."""

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if not x.is_complex():
            raise TypeError(f"ComplexAsChannels expects a complex (B, H, W) tensor, got {x.dtype}")
        s = as_sigma(sigma, x)
        return channels_to_complex(self.denoiser(complex_to_channels(x), s))


class ComplexParts(nn.Module):
    """A denoiser of real ``(B, H, W)`` images used on complex ``(B, H, W)`` images, on the real and the imaginary
    part separately (one batched call): score-MRI's use of a magnitude-trained prior on complex data."""

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if not x.is_complex():
            raise TypeError(f"ComplexParts expects a complex (B, H, W) tensor, got {x.dtype}")
        s = as_sigma(sigma, x)
        out = self.denoiser(torch.cat([x.real, x.imag]), torch.cat([s, s]))
        return torch.complex(out[: x.shape[0]], out[x.shape[0]:])


class AddChannel(nn.Module):
    """A denoiser of real ``(B, 1, H, W)`` images used on real ``(B, H, W)`` images."""

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if x.is_complex():
            raise TypeError("AddChannel expects a real (B, H, W) tensor; use ComplexAsChannels for complex images")
        s = as_sigma(sigma, x)
        return self.denoiser(x.unsqueeze(1), s).squeeze(1)


class PadToMultiple(nn.Module):
    """A channel-space denoiser ``(B, C, H, W)`` run on the next grid whose sides are multiples of ``multiple``
    ``(mh, mw)``: the input is padded at the bottom and right by reflection (the padded noise keeps its level),
    the output cropped back to ``(H, W)``; grids that already fit pass through unchanged."""

    def __init__(self, denoiser: Denoiser, multiple: tuple[int, int]):
        super().__init__()
        self.denoiser = denoiser
        self.multiple = (int(multiple[0]), int(multiple[1]))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple[0], -w % self.multiple[1]
        if ph == pw == 0:
            return self.denoiser(x, sigma)
        mode = "reflect" if ph < h and pw < w else "replicate"
        padded = nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        return self.denoiser(padded, as_sigma(sigma, x))[..., :h, :w]


class SlidingWindow(nn.Module):
    """A channel-space denoiser ``(B, C, H, W)`` run in overlapping windows of ``window`` ``(wh, ww)`` pixels,
    blended with Gaussian weights (MONAI's ``sliding_window_inference``; ``overlap`` is the fraction two
    neighbouring windows share). A network trained on random crops has only seen the statistics of a crop (its
    normalisation layers' statistics, its attention's token count); in windows of that size it denoises larger
    grids better than in one pass at low noise (``docs/priors.md``); at high noise the estimate needs the whole
    object, so levels above ``sigma_max`` (``None``: none) run in one pass. A grid no larger than the window in both
    sides passes through unchanged; a side shorter than the window gets windows of its own length. Differentiable
    in ``x``."""

    def __init__(self, denoiser: Denoiser, window: tuple[int, int], overlap: float = 0.25, batch: int = 16,
                 sigma_max: float | None = None):
        super().__init__()
        if min(window) < 8 or not 0.0 <= overlap < 1.0 or batch < 1:
            raise ValueError(f"need window sides >= 8, 0 <= overlap < 1 and batch >= 1; got {window}, {overlap}, "
                             f"{batch}")
        self.denoiser = denoiser
        self.window = (int(window[0]), int(window[1]))
        self.overlap = float(overlap)
        self.batch = int(batch)
        self.sigma_max = None if sigma_max is None else float(sigma_max)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        h, w = x.shape[-2:]
        if h <= self.window[0] and w <= self.window[1]:
            return self.denoiser(x, sigma)
        roi = (min(self.window[0], h), min(self.window[1], w))
        s = as_sigma(sigma, x)
        idxs, parts = [], []
        for value in torch.unique(s):  # MONAI batches windows of different images together: one sigma per pass
            idx = (s == value).nonzero().flatten()
            level = value.reshape(1)
            idxs.append(idx)
            if self.sigma_max is not None and float(value) > self.sigma_max:
                parts.append(self.denoiser(x[idx], level.expand(idx.numel())))
                continue
            parts.append(sliding_window_inference(
                x[idx], roi, self.batch, lambda t, level=level: self.denoiser(t, level.expand(t.shape[0])),
                overlap=self.overlap, mode="gaussian"))
        if len(parts) == 1:
            return parts[0]
        order = torch.cat(idxs).argsort()
        return torch.cat(parts)[order]


class SliceWise(nn.Module):
    """Apply a 2D denoiser of ``(N, H, W)`` images to volumes ``(B, D, H, W)``, ``chunk`` slices at a time.

    Each slice of volume ``b`` gets ``sigma[b]``; at most ``chunk`` slices go through the network at once, so
    memory stays bounded for any ``B * D``.
    """

    def __init__(self, denoiser: Denoiser, chunk: int = 16):
        super().__init__()
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        self.denoiser = denoiser
        self.chunk = int(chunk)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"SliceWise expects (B, D, H, W) volumes, got shape {tuple(x.shape)}")
        b, d = x.shape[:2]
        s = as_sigma(sigma, x).repeat_interleave(d)
        flat = x.reshape(b * d, *x.shape[2:])
        out = torch.empty_like(flat)
        for i in range(0, b * d, self.chunk):
            out[i:i + self.chunk] = self.denoiser(flat[i:i + self.chunk], s[i:i + self.chunk])
        return out.reshape(x.shape)
