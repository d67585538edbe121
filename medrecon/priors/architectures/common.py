"""Config checking shared by the architectures: unknown keys are refused, missing ones take the defaults."""
from __future__ import annotations

from typing import Any

__all__ = ["check_config"]


def check_config(name: str, config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``{**defaults, **config}``; ``ValueError`` naming the architecture and the allowed keys for unknown keys."""
    if not isinstance(config, dict):
        raise ValueError(f"{name} config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {name} config keys {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **config}
