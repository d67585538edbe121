"""The network architectures a prior checkpoint may name (sidecar ``architecture.name``), one entry each:
how to build it from its config, how to call it the way the adapters expect, and which extra entries of an
original checkpoint (buffers not stored here) it checks and drops on import.

``guided_diffusion.UNetModel`` (short name ``adm``): ``net(x_vp, t)`` -> eps (the learned-variance half dropped).
``score_sde.NCSNpp`` (``ncsnpp``): ``net(x, sigma)`` -> the VE score. ``monai.DiffusionModelUNet``: the shipped
priors' backbone.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..adapters import LearnedSigmaSplit

__all__ = ["ARCHITECTURES", "Architecture", "SHORT_NAMES", "architecture"]


def _no_buffers(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    return state


@dataclass(frozen=True)
class Architecture:
    """``build(config) -> nn.Module``; ``network(module) ->`` the callable the adapters wrap;
    ``source_buffers(state, config) -> state`` checks and drops an original checkpoint's extra buffers."""

    name: str
    build: Callable[[dict[str, Any]], nn.Module]
    network: Callable[[nn.Module], nn.Module]
    source_buffers: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, torch.Tensor]] = _no_buffers


def _build_monai(config: dict[str, Any]) -> nn.Module:
    from ..network import build_unet

    return build_unet(config)


def _build_adm(config: dict[str, Any]) -> nn.Module:
    from .adm import build

    return build(config)


def _adm_network(net: nn.Module) -> nn.Module:
    return LearnedSigmaSplit(net) if net.config["learn_sigma"] else net


def _build_ncsnpp(config: dict[str, Any]) -> nn.Module:
    from .ncsnpp import build

    return build(config)


def _ncsnpp_network(net: nn.Module) -> nn.Module:
    from .ncsnpp import SigmaConditioned

    return SigmaConditioned(net)


def _ncsnpp_buffers(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    from .ncsnpp import check_source_buffers

    return check_source_buffers(state, config)


ARCHITECTURES: dict[str, Architecture] = {
    "monai.DiffusionModelUNet": Architecture("monai.DiffusionModelUNet", _build_monai, lambda net: net),
    "guided_diffusion.UNetModel": Architecture("guided_diffusion.UNetModel", _build_adm, _adm_network),
    "score_sde.NCSNpp": Architecture("score_sde.NCSNpp", _build_ncsnpp, _ncsnpp_network, _ncsnpp_buffers),
}
SHORT_NAMES = {"adm": "guided_diffusion.UNetModel", "ncsnpp": "score_sde.NCSNpp"}


def architecture(name: str) -> Architecture:
    """The architecture called ``name`` (a full name or a short one, ``adm`` / ``ncsnpp``); ``KeyError`` listing
    the known names otherwise."""
    full = SHORT_NAMES.get(name, name)
    if full not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(SHORT_NAMES) + sorted(ARCHITECTURES)}")
    return ARCHITECTURES[full]
