"""score_sde's NCSN++ (Song et al. 2021), written from the paper's description with the original parameter names
(a flat ``all_modules`` list, ``GroupNorm_0``, ``Conv_0``, ``Dense_0``, ``NIN_0``, ``Conv2d_0`` ...), so that a
score_sde checkpoint's state dict loads as is.

``net(x (B, C, H, W), time_cond (B,)) -> (B, C, H, W)``: with the Fourier embedding ``time_cond`` is the VE noise
std ``sigma`` (embedded as ``log sigma``); with the positional one it is the index into the descending geometric
table ``sigmas`` (``num_scales`` values from ``sigma_max`` to ``sigma_min``). With ``scale_by_sigma`` the output is
divided by ``sigma``: the network then predicts the score of the VE marginal. Without ``centered`` the network maps
its ``[0, 1]`` input to ``2 x - 1`` first (the noise stays in ``[0, 1]`` units).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import fir
from .common import check_config

__all__ = ["DEFAULTS", "NAME", "NCSNpp", "SigmaConditioned", "build", "check_source_buffers"]

NAME = "score_sde.NCSNpp"
DEFAULTS: dict[str, Any] = {  # score-MRI / DiffusionMBIR's fastmri_knee_320 and AAPM_256 configs, at 256 px
    "image_size": 256,
    "num_channels": 1,
    "centered": False,
    "nf": 128,
    "ch_mult": [1, 2, 2, 2],
    "num_res_blocks": 4,
    "attn_resolutions": [16],
    "dropout": 0.0,
    "resamp_with_conv": True,
    "conditional": True,
    "fir": True,
    "fir_kernel": [1, 3, 3, 1],
    "skip_rescale": True,
    "resblock_type": "biggan",
    "progressive": "none",
    "progressive_input": "residual",
    "progressive_combine": "sum",
    "embedding_type": "fourier",
    "fourier_scale": 16.0,
    "scale_by_sigma": True,
    "nonlinearity": "swish",
    "sigma_min": 0.01,
    "sigma_max": 378.0,
    "num_scales": 2000,
}
CHOICES = {
    "resblock_type": ("ddpm", "biggan"),
    "progressive": ("none", "output_skip", "residual"),
    "progressive_input": ("none", "input_skip", "residual"),
    "progressive_combine": ("sum", "cat"),
    "embedding_type": ("fourier", "positional"),
    "nonlinearity": ("swish", "elu", "relu", "lrelu"),
}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "swish": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "lrelu": lambda: nn.LeakyReLU(0.2)}
SQRT2 = math.sqrt(2.0)


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def _conv3(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=padding)


class GaussianFourierProjection(nn.Module):
    """``[sin(2 pi W s), cos(2 pi W s)]`` with fixed random frequencies ``W`` ``(nf,)``; ``(B,) -> (B, 2 nf)``."""

    def __init__(self, size: int, scale: float):
        super().__init__()
        self.W = nn.Parameter(torch.randn(size) * scale, requires_grad=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        proj = s[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def positional_embedding(t: torch.Tensor, dim: int, max_positions: float = 10000.0) -> torch.Tensor:
    """DDPM's ``[sin(t f), cos(t f)]``, ``f_i = max_positions^(-i / (dim // 2 - 1))``; ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(max_positions) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    return F.pad(torch.cat([torch.sin(args), torch.cos(args)], dim=1), (0, dim % 2))


class NIN(nn.Module):
    """A 1x1 layer as ``x_c W[c, o] + b[o]`` (``W`` ``(in, out)``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[None, :, None, None]


class Combine(nn.Module):
    """``Conv_0(x)`` (1x1) concatenated with or added to ``y``."""

    def __init__(self, cin: int, cout: int, method: str):
        super().__init__()
        self.Conv_0 = nn.Conv2d(cin, cout, 1)
        self.method = method

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.Conv_0(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y


class AttnBlockpp(nn.Module):
    """Single-head self-attention over pixels, ``softmax(q^T k / sqrt(C)) v``, residual (rescaled by 1/sqrt 2)."""

    def __init__(self, channels: int, skip_rescale: bool):
        super().__init__()
        self.GroupNorm_0 = _gn(channels)
        self.NIN_0, self.NIN_1, self.NIN_2, self.NIN_3 = (NIN(channels, channels) for _ in range(4))
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.GroupNorm_0(x)
        q, k, v = self.NIN_0(n), self.NIN_1(n), self.NIN_2(n)
        att = torch.einsum("bchw,bcij->bhwij", q, k).reshape(b, h, w, h * w) * c**-0.5
        att = att.softmax(dim=-1).reshape(b, h, w, h, w)
        out = x + self.NIN_3(torch.einsum("bhwij,bcij->bchw", att, v))
        return out / SQRT2 if self.skip_rescale else out


class Resample(nn.Module):
    """NCSN++'s ``Upsample`` / ``Downsample``: FIR (fused with a 3x3 conv ``Conv2d_0`` when ``with_conv``) or
    nearest / average pooling (then ``Conv_0``; the downsampling conv has stride 2 after padding right/bottom)."""

    def __init__(self, cin: int, cout: int | None, up: bool, with_conv: bool, use_fir: bool, kernel: list[float]):
        super().__init__()
        cout = cout or cin
        self.up, self.with_conv, self.fir, self.kernel = up, with_conv, use_fir, list(kernel)
        if with_conv and use_fir:
            self.Conv2d_0 = _FirConv(cin, cout)
        elif with_conv:
            self.Conv_0 = _conv3(cin, cout) if up else _conv3(cin, cout, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fir:
            if not self.with_conv:
                return fir.upsample_2d(x, self.kernel) if self.up else fir.downsample_2d(x, self.kernel)
            w = self.Conv2d_0.weight
            h = fir.upsample_conv_2d(x, w, self.kernel) if self.up else fir.conv_downsample_2d(x, w, self.kernel)
            return h + self.Conv2d_0.bias[None, :, None, None]
        if self.up:
            h = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.Conv_0(h) if self.with_conv else h
        return self.Conv_0(F.pad(x, (0, 1, 0, 1))) if self.with_conv else F.avg_pool2d(x, 2, 2)


class _FirConv(nn.Module):
    """The weights of a fused FIR-resampling 3x3 conv (``weight`` ``(out, in, 3, 3)``, ``bias``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))


class ResnetBlock(nn.Module):
    """NCSN++'s residual blocks: ``ddpm`` (1x1 ``NIN_0`` shortcut when channels change) or ``biggan`` (optional FIR
    or naive up/down resampling of both branches, 1x1 ``Conv_2`` shortcut); ``Dense_0`` adds the embedding."""

    def __init__(self, kind: str, act: nn.Module, cin: int, cout: int | None, temb_dim: int, dropout: float,
                 skip_rescale: bool, use_fir: bool, kernel: list[float], up: bool = False, down: bool = False):
        super().__init__()
        cout = cout or cin
        self.kind, self.act, self.up, self.down, self.fir, self.kernel = kind, act, up, down, use_fir, list(kernel)
        self.skip_rescale = skip_rescale
        self.GroupNorm_0 = _gn(cin)
        self.Conv_0 = _conv3(cin, cout)
        self.Dense_0 = nn.Linear(temb_dim, cout)
        self.GroupNorm_1 = _gn(cout)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = _conv3(cout, cout)
        self.shortcut = cin != cout or (kind == "biggan" and (up or down))
        if self.shortcut and kind == "biggan":
            self.Conv_2 = nn.Conv2d(cin, cout, 1)
        elif self.shortcut:
            self.NIN_0 = NIN(cin, cout)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return fir.upsample_2d(x, self.kernel) if self.fir else x.repeat_interleave(2, -2).repeat_interleave(2, -1)
        if self.down:
            return fir.downsample_2d(x, self.kernel) if self.fir else F.avg_pool2d(x, 2, 2)
        return x

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.act(self.GroupNorm_0(x))
        if self.kind == "biggan":
            h, x = self._resample(h), self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.shortcut:
            x = self.Conv_2(x) if self.kind == "biggan" else self.NIN_0(x)
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class NCSNpp(nn.Module):
    """NCSN++; see the module docstring (config keys ``DEFAULTS``, choices ``CHOICES``)."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = check_config(NAME, config, DEFAULTS)
        for key, allowed in CHOICES.items():
            if str(cfg[key]).lower() not in allowed:
                raise ValueError(f"{NAME} config {key}={cfg[key]!r}; allowed: {list(allowed)}")
            cfg[key] = str(cfg[key]).lower()
        self.config = cfg
        self.act = act = ACTIVATIONS[cfg["nonlinearity"]]()
        nf, mult, nres = int(cfg["nf"]), [int(m) for m in cfg["ch_mult"]], int(cfg["num_res_blocks"])
        self.nf, self.nres, self.levels = nf, nres, len(mult)
        size = int(cfg["image_size"])
        self.attn_levels = [size // 2**i in {int(r) for r in cfg["attn_resolutions"]} for i in range(len(mult))]
        table = torch.exp(torch.linspace(math.log(cfg["sigma_max"]), math.log(cfg["sigma_min"]), int(cfg["num_scales"]),
                                         dtype=torch.float64)).float()
        self.register_buffer("sigmas", table, persistent=False)
        kernel, use_fir, skip = list(cfg["fir_kernel"]), bool(cfg["fir"]), bool(cfg["skip_rescale"])
        kind, prog, prog_in = cfg["resblock_type"], cfg["progressive"], cfg["progressive_input"]
        channels = int(cfg["num_channels"])

        def res(cin: int, cout: int | None = None, **kw: bool) -> ResnetBlock:
            return ResnetBlock(kind, act, cin, cout, 4 * nf, float(cfg["dropout"]), skip, use_fir, kernel, **kw)

        def resample(cin: int, cout: int | None, up: bool, with_conv: bool) -> Resample:
            return Resample(cin, cout, up, with_conv, use_fir, kernel)

        modules: list[nn.Module] = []
        if cfg["embedding_type"] == "fourier":
            modules.append(GaussianFourierProjection(nf, float(cfg["fourier_scale"])))
        embed_dim = 2 * nf if cfg["embedding_type"] == "fourier" else nf
        if cfg["conditional"]:
            modules += [nn.Linear(embed_dim, 4 * nf), nn.Linear(4 * nf, 4 * nf)]
        modules.append(_conv3(channels, nf))
        hs_c, in_ch, pyramid_in = [nf], nf, channels
        for level, m in enumerate(mult):
            for _ in range(nres):
                modules.append(res(in_ch, nf * m))
                in_ch = nf * m
                if self.attn_levels[level]:
                    modules.append(AttnBlockpp(in_ch, skip))
                hs_c.append(in_ch)
            if level != len(mult) - 1:
                modules.append(resample(in_ch, None, False, bool(cfg["resamp_with_conv"])) if kind == "ddpm"
                               else res(in_ch, down=True))
                if prog_in == "input_skip":
                    modules.append(Combine(pyramid_in, in_ch, cfg["progressive_combine"]))
                    in_ch *= 2 if cfg["progressive_combine"] == "cat" else 1
                elif prog_in == "residual":
                    modules.append(resample(pyramid_in, in_ch, False, True))
                    pyramid_in = in_ch
                hs_c.append(in_ch)
        in_ch = hs_c[-1]
        modules += [res(in_ch), AttnBlockpp(in_ch, skip), res(in_ch)]
        pyramid_ch = 0
        for level in reversed(range(len(mult))):
            for _ in range(nres + 1):
                modules.append(res(in_ch + hs_c.pop(), nf * mult[level]))
                in_ch = nf * mult[level]
            if self.attn_levels[level]:
                modules.append(AttnBlockpp(in_ch, skip))
            if prog != "none":
                if level == len(mult) - 1 or prog == "output_skip":
                    out = channels if prog == "output_skip" else in_ch
                    modules += [_gn(in_ch), _conv3(in_ch, out)]
                    pyramid_ch = out
                else:
                    modules.append(resample(pyramid_ch, in_ch, True, True))
                    pyramid_ch = in_ch
            if level != 0:
                modules.append(resample(in_ch, None, True, bool(cfg["resamp_with_conv"])) if kind == "ddpm"
                               else res(in_ch, up=True))
        assert not hs_c
        if prog != "output_skip":
            modules += [_gn(in_ch), _conv3(in_ch, channels)]
        self.all_modules = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor, time_cond: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, num_channels, H, W)``; ``time_cond`` ``(B,)``: sigma (Fourier) or table index (positional)."""
        cfg, mods = self.config, iter(self.all_modules)
        if cfg["embedding_type"] == "fourier":
            used_sigmas = time_cond
            temb = next(mods)(torch.log(time_cond))
        else:
            used_sigmas = self.sigmas[time_cond.long()]
            temb = positional_embedding(time_cond, self.nf)
        if cfg["conditional"]:
            temb = next(mods)(temb.to(x.dtype))
            temb = next(mods)(self.act(temb))
        else:
            temb = None
        if not cfg["centered"]:
            x = 2 * x - 1.0
        skip, prog, prog_in = bool(cfg["skip_rescale"]), cfg["progressive"], cfg["progressive_input"]
        pyramid_in = x
        hs = [next(mods)(x)]
        for level in range(self.levels):
            for _ in range(self.nres):
                h = next(mods)(hs[-1], temb)
                if self.attn_levels[level]:
                    h = next(mods)(h)
                hs.append(h)
            if level != self.levels - 1:
                block = next(mods)
                h = block(hs[-1]) if cfg["resblock_type"] == "ddpm" else block(hs[-1], temb)
                if prog_in == "input_skip":
                    pyramid_in = fir.downsample_2d(pyramid_in, cfg["fir_kernel"]) if cfg["fir"] else \
                        F.avg_pool2d(pyramid_in, 2, 2)
                    h = next(mods)(pyramid_in, h)
                elif prog_in == "residual":
                    pyramid_in = next(mods)(pyramid_in)
                    pyramid_in = (pyramid_in + h) / SQRT2 if skip else pyramid_in + h
                    h = pyramid_in
                hs.append(h)
        h = hs[-1]
        h = next(mods)(h, temb)
        h = next(mods)(h)
        h = next(mods)(h, temb)
        pyramid = None
        for level in reversed(range(self.levels)):
            for _ in range(self.nres + 1):
                h = next(mods)(torch.cat([h, hs.pop()], dim=1), temb)
            if self.attn_levels[level]:
                h = next(mods)(h)
            if prog != "none":
                if level == self.levels - 1:
                    pyramid = self._norm_act_conv(mods, h)
                elif prog == "output_skip":
                    up = fir.upsample_2d(pyramid, cfg["fir_kernel"]) if cfg["fir"] else \
                        F.interpolate(pyramid, scale_factor=2, mode="nearest")
                    pyramid = up + self._norm_act_conv(mods, h)
                else:
                    pyramid = next(mods)(pyramid)
                    pyramid = (pyramid + h) / SQRT2 if skip else pyramid + h
                    h = pyramid
            if level != 0:
                block = next(mods)
                h = block(h) if cfg["resblock_type"] == "ddpm" else block(h, temb)
        if prog == "output_skip":
            h = pyramid
        else:
            h = self._norm_act_conv(mods, h)
        if cfg["scale_by_sigma"]:
            h = h / used_sigmas.to(h.dtype).reshape(-1, 1, 1, 1)
        return h

    def _norm_act_conv(self, mods: Any, h: torch.Tensor) -> torch.Tensor:
        norm, conv = next(mods), next(mods)
        return conv(self.act(norm(h)))

    def time_condition(self, sigma: torch.Tensor) -> torch.Tensor:
        """What ``forward`` is conditioned on for VE noise std ``sigma`` ``(B,)``: sigma itself (Fourier), or the
        nearest index of the descending table ``sigmas`` in log sigma (positional)."""
        if self.config["embedding_type"] == "fourier":
            return sigma
        lo, hi = math.log(self.config["sigma_min"]), math.log(self.config["sigma_max"])
        frac = (hi - sigma.double().clamp_min(1e-30).log()) / (hi - lo)
        return (frac * (len(self.sigmas) - 1)).round().clamp(0, len(self.sigmas) - 1).long()


class SigmaConditioned(nn.Module):
    """``net(x, sigma)`` for an ``NCSNpp``: converts sigma to the network's time condition (see ``time_condition``)."""

    def __init__(self, net: NCSNpp):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.net.time_condition(sigma))


def check_source_buffers(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Check and drop the checkpoint's ``sigmas`` table (not stored: rebuilt from the config): its ends must be the
    config's ``sigma_max`` and ``sigma_min`` and, with the positional embedding, its length ``num_scales``.
    ``ValueError`` otherwise."""
    cfg = {**DEFAULTS, **config}
    state = dict(state)
    table = state.pop("sigmas", None)
    if table is None:
        return state
    if table.ndim != 1 or len(table) < 2:
        raise ValueError(f"'sigmas' has shape {tuple(table.shape)}; expected a 1-D table of noise levels")
    ends = (float(table[0]), float(table[-1]))
    want = (float(cfg["sigma_max"]), float(cfg["sigma_min"]))
    if not all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(ends, want)):
        raise ValueError(f"the checkpoint's 'sigmas' runs from {ends[0]:g} to {ends[1]:g}, but the config says "
                         f"sigma_max={want[0]:g}, sigma_min={want[1]:g}")
    if str(cfg["embedding_type"]).lower() == "positional" and len(table) != int(cfg["num_scales"]):
        raise ValueError(f"the checkpoint's 'sigmas' has {len(table)} levels but num_scales={cfg['num_scales']}")
    return state


def build(config: dict[str, Any]) -> NCSNpp:
    """An NCSN++ from ``config`` (missing keys from ``DEFAULTS``)."""
    return NCSNpp(config)
