"""What a prior's sidecar says about the data it serves: noise range, data spread and intensity normalisation.

Every consumer (jobs, bench, notebook) reads these facts through the functions here, so a prior without a sidecar
(an exact Gaussian test prior, a user's module) gets the same documented fallbacks everywhere.

Sidecar field ``normalisation`` (how training images were scaled into the prior's units)::

    {"rule": "percentile", "percentile": 99.5, "value": 1.0}   # that percentile of |image| over a volume -> value
    {"rule": "fixed", "scale": 0.0384, "units": "1/mm"}        # data units per prior unit (CT attenuation)
"""
from __future__ import annotations

from typing import Any

__all__ = ["Normalisation", "meta_of", "normalisation", "sigma_data", "sigma_range"]

DEFAULT_SIGMA_RANGE = (0.002, 80.0)


def meta_of(prior: Any) -> dict[str, Any]:
    """The prior's sidecar (``prior.meta``), or an empty dict."""
    meta = getattr(prior, "meta", None)
    return meta if isinstance(meta, dict) else {}


def sigma_range(meta: dict[str, Any]) -> tuple[float, float]:
    """``(sigma_min, sigma_max)`` the prior was trained on (EDM's 0.002 .. 80 when the sidecar has none)."""
    sched = meta.get("noise_schedule", {})
    return float(sched.get("sigma_min", DEFAULT_SIGMA_RANGE[0])), float(sched.get("sigma_max", DEFAULT_SIGMA_RANGE[1]))


def sigma_data(meta: dict[str, Any]) -> float | None:
    """The training data's standard deviation per real component (EDM's ``sigma_data``), or None if unknown."""
    value = meta.get("preconditioning", {}).get("sigma_data")
    return None if value is None else float(value)


class Normalisation:
    """The intensity rule of a prior: ``rule`` ``"percentile"`` (``percentile`` of ``|x|`` -> ``value``) or
    ``"fixed"`` (``scale`` data units per prior unit)."""

    def __init__(self, rule: str, percentile: float = 99.5, value: float = 1.0, scale: float = 1.0):
        if rule not in ("percentile", "fixed"):
            raise ValueError(f"normalisation rule must be 'percentile' or 'fixed', got {rule!r}")
        self.rule, self.percentile, self.value, self.scale = rule, float(percentile), float(value), float(scale)

    def describe(self) -> dict[str, Any]:
        if self.rule == "fixed":
            return {"rule": "fixed", "scale": self.scale}
        return {"rule": "percentile", "percentile": self.percentile, "value": self.value}


def normalisation(meta: dict[str, Any]) -> Normalisation:
    """The sidecar's ``normalisation``; without one, the top of ``data_range`` at the 99.5th percentile."""
    spec = meta.get("normalisation")
    if isinstance(spec, dict):
        return Normalisation(
            str(spec.get("rule", "percentile")),
            spec.get("percentile", 99.5),
            spec.get("value", 1.0),
            spec.get("scale", 1.0),
        )
    data_range = meta.get("data_range", (0.0, 1.0))
    return Normalisation("percentile", 99.5, float(max(abs(v) for v in data_range)))
