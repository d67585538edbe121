"""The guided-diffusion ADM U-Net (Dhariwal & Nichol 2021, ``UNetModel``), written from the paper's description with
the original parameter names, so that a checkpoint's state dict loads as is.

``net(x (B, C, H, W), t (B,)) -> (B, C_out, H, W)``; ``t`` is the DDPM timestep (0 .. T-1, fractional allowed).
With ``learn_sigma`` the output has ``2 C`` channels: eps, then the variance interpolation ``v`` of
``log Sigma = v log beta_t + (1 - v) log beta~_t``.

Config (the keys of guided-diffusion's ``create_model``; ``attention_resolutions`` are pixel resolutions, as in
its command-line flags, converted to downsampling factors ``image_size // r``)::

    image_size, in_channels, model_channels, num_res_blocks, channel_mult, attention_resolutions, learn_sigma,
    num_heads, num_head_channels, num_heads_upsample, use_scale_shift_norm, resblock_updown,
    use_new_attention_order, conv_resample, dropout
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_config

__all__ = ["DEFAULTS", "NAME", "UNetModel", "build", "output_channels"]

NAME = "guided_diffusion.UNetModel"
DEFAULTS: dict[str, Any] = {
    "image_size": 256,
    "in_channels": 1,
    "model_channels": 256,
    "num_res_blocks": 1,
    "channel_mult": [1, 1, 2, 2, 4, 4],
    "attention_resolutions": [16],
    "learn_sigma": True,
    "num_heads": 4,
    "num_head_channels": 64,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "use_new_attention_order": False,
    "conv_resample": True,
    "dropout": 0.0,
}
GROUPS = 32  # guided-diffusion's normalization(): GroupNorm(32, C), computed in float32


class _Norm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def _norm(channels: int) -> nn.GroupNorm:
    return _Norm(GROUPS, channels)


class _Resample(nn.Module):
    """Nearest 2x upsampling or 2x downsampling (strided 3x3 conv, or 2x2 average pooling without a conv)."""

    def __init__(self, channels: int, up: bool, with_conv: bool):
        super().__init__()
        self.up, self.with_conv = up, with_conv
        if with_conv and up:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        elif with_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv(x) if self.with_conv else x
        return self.op(x) if self.with_conv else F.avg_pool2d(x, 2, 2)


class ResBlock(nn.Module):
    """``skip(x) + out(in(x) conditioned on emb)``; scale-shift norm: ``GN(h) (1 + scale) + shift``."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float,
                 scale_shift: bool, up: bool = False, down: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if self.updown:
            self.h_upd = _Resample(channels, up, False)
            self.x_upd = _Resample(channels, up, False)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, (2 if scale_shift else 1) * out_channels))
        self.out_layers = nn.Sequential(_norm(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all pixels; ``qkv`` and ``proj_out`` are 1x1 ``Conv1d``s.

    Legacy order (default): the ``3C`` qkv channels are split into heads first, then into q, k, v; the new order
    splits q, k, v first.
    """

    def __init__(self, channels: int, num_heads: int, num_head_channels: int, new_order: bool):
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        if num_head_channels != -1 and channels % num_head_channels:
            raise ValueError(f"{channels} channels are not a multiple of num_head_channels {num_head_channels}")
        self.new_order = new_order
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        n = qkv.shape[-1]
        ch = c // self.heads
        if self.new_order:
            q, k, v = (t.reshape(b * self.heads, ch, n) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * self.heads, 3 * ch, n).split(ch, dim=1)
        w = torch.einsum("bct,bcs->bts", q, k) / math.sqrt(ch)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        h = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, n)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class _Step(nn.ModuleList):
    """One entry of ``input_blocks`` / ``output_blocks``: layers applied in order (ResBlocks get ``emb``)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    """The ADM U-Net; see the module docstring for the config."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = check_config(NAME, config, DEFAULTS)
        self.config = cfg
        mc = int(cfg["model_channels"])
        self.model_channels = mc
        mult = [int(m) for m in cfg["channel_mult"]]
        nres = int(cfg["num_res_blocks"])
        size = int(cfg["image_size"])
        attn_ds = {size // int(r) for r in cfg["attention_resolutions"]}
        heads, head_ch = int(cfg["num_heads"]), int(cfg["num_head_channels"])
        heads_up = heads if int(cfg["num_heads_upsample"]) == -1 else int(cfg["num_heads_upsample"])
        ss, drop, updown = bool(cfg["use_scale_shift_norm"]), float(cfg["dropout"]), bool(cfg["resblock_updown"])
        new_order, conv_resample = bool(cfg["use_new_attention_order"]), bool(cfg["conv_resample"])
        emb = 4 * mc

        def res(cin: int, cout: int, **kw: bool) -> ResBlock:
            return ResBlock(cin, emb, cout, drop, ss, **kw)

        def attn(ch: int, nh: int) -> AttentionBlock:
            return AttentionBlock(ch, nh, head_ch, new_order)

        def resample(ch: int, up: bool) -> nn.Module:
            return res(ch, ch, up=up, down=not up) if updown else _Resample(ch, up, conv_resample)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = mult[0] * mc
        self.input_blocks = nn.ModuleList([_Step([nn.Conv2d(int(cfg["in_channels"]), ch, 3, padding=1)])])
        skips, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(nres):
                layers: list[nn.Module] = [res(ch, m * mc)]
                ch = m * mc
                if ds in attn_ds:
                    layers.append(attn(ch, heads))
                self.input_blocks.append(_Step(layers))
                skips.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(_Step([resample(ch, up=False)]))
                skips.append(ch)
                ds *= 2
        self.middle_block = _Step([res(ch, ch), attn(ch, heads), res(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nres + 1):
                layers = [res(ch + skips.pop(), m * mc)]
                ch = m * mc
                if ds in attn_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == nres:
                    layers.append(resample(ch, up=True))
                    ds //= 2
                self.output_blocks.append(_Step(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(mult[0] * mc, output_channels(cfg), 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in_channels, H, W)``, ``timesteps`` ``(B,)`` -> ``(B, out_channels, H, W)``."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """ADM's sinusoidal embedding ``[cos(t f), sin(t f)]``, ``f_i = max_period^(-i / (dim // 2))``; ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def output_channels(config: dict[str, Any]) -> int:
    """``2 in_channels`` with ``learn_sigma`` (eps and the variance interpolation), else ``in_channels``."""
    cfg = {**DEFAULTS, **config}
    return int(cfg["in_channels"]) * (2 if cfg["learn_sigma"] else 1)


def build(config: dict[str, Any]) -> UNetModel:
    """An ADM U-Net from ``config`` (missing keys from ``DEFAULTS``, which are DDS's 256-px settings)."""
    return UNetModel(config)
