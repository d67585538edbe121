"""The default backbone: MONAI's 2D ``DiffusionModelUNet``, built from a plain config dict (stored in checkpoints)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["DEFAULT_UNET", "UNET_KEYS", "UNetWrapper", "build_unet", "count_parameters"]

UNET_KEYS = ("in_channels", "out_channels", "channels", "num_res_blocks", "attention_levels", "num_head_channels",
             "norm_num_groups")
DEFAULT_UNET: dict[str, Any] = {
    "channels": [32, 64, 128, 128],
    "num_res_blocks": 1,
    "attention_levels": [False, False, False, True],
    "num_head_channels": 32,
    "norm_num_groups": 32,
}


class UNetWrapper(nn.Module):
    """``net(x (B, C, H, W), noise_label (B,)) -> (B, C_out, H, W)`` around MONAI's ``DiffusionModelUNet``."""

    def __init__(self, unet: nn.Module, config: dict[str, Any]):
        super().__init__()
        self.unet = unet
        self.config = dict(config)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        return self.unet(x, timesteps=noise_label)


def build_unet(config: dict[str, Any]) -> UNetWrapper:
    """A 2D MONAI ``DiffusionModelUNet`` from ``config`` (keys ``UNET_KEYS``; missing ones from ``DEFAULT_UNET``)."""
    from monai.networks.nets import DiffusionModelUNet

    unknown = set(config) - set(UNET_KEYS)
    if unknown:
        raise ValueError(f"unknown U-Net keys {sorted(unknown)}; allowed: {list(UNET_KEYS)}")
    cfg = {**DEFAULT_UNET, **config}
    unet = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=int(cfg["in_channels"]),
        out_channels=int(cfg["out_channels"]),
        channels=tuple(int(c) for c in cfg["channels"]),
        num_res_blocks=int(cfg["num_res_blocks"]),
        attention_levels=tuple(bool(a) for a in cfg["attention_levels"]),
        num_head_channels=int(cfg["num_head_channels"]),
        norm_num_groups=int(cfg["norm_num_groups"]),
    )
    return UNetWrapper(unet, cfg)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
