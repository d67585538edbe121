"""What a prior's sidecar says about the data it serves: noise range, data spread and intensity normalisation.

Every consumer (jobs, bench, notebook) reads these facts through the functions here, so a prior without a sidecar
(an exact Gaussian test prior, a user's module) gets the same documented fallbacks everywhere.

Sidecar field ``normalisation`` (how training images were scaled into the prior's units)::

    {"rule": "percentile", "percentile": 99.5, "value": 1.0}   # that percentile of |image| over a volume -> value
    {"rule": "fixed", "scale": 0.0384, "units": "1/mm"}        # data units per prior unit (CT attenuation)

Sidecar field ``serves`` (the data the prior serves; every key optional)::

    {"min_size": [h, w], "max_size": [h, w],     # image grids (sides in pixels)
     "multiple_of": 8,                           # the network's downsampling factor (or [mh, mw])
     "pad": true,                                # other grids are padded to the next multiple (PadToMultiple)
     "pixel_spacing_mm": [lo, hi],               # pixel sides the training images had (mm)
     "intensity_range": [lo, hi],                # training images' range in prior units
     "window": [h, w],                           # larger grids are denoised in overlapping windows of this
                                                 # size (SlidingWindow): the scale a crop-trained network knows
     "window_sigma_max": s}                      # ... at noise levels up to s only (default: all)

Without ``serves`` a prior serves exactly its ``image_size``; a prior with neither (analytic or test denoisers)
serves every grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = ["SERVES_KEYS", "Normalisation", "ServedShapes", "meta_of", "normalisation", "served_shapes",
           "sigma_data", "sigma_range"]

SERVES_KEYS = ("min_size", "max_size", "multiple_of", "pad", "pixel_spacing_mm", "intensity_range", "window",
               "window_sigma_max")

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


@dataclass(frozen=True)
class ServedShapes:
    """What a prior serves: grids ``(h, w)`` with ``min_size <= (h, w) <= max_size`` whose sides are multiples of
    ``multiple_of`` (any side with ``pad``: the network then runs on the next multiple), pixel sides in
    ``pixel_spacing_mm`` and prior-unit intensities in ``intensity_range`` (each bound optional); grids larger
    than ``window`` are denoised in overlapping windows of that size (``None``: in one pass) at noise levels up to
    ``window_sigma_max`` (``None``: every level)."""

    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    multiple_of: tuple[int, int] = (1, 1)
    pad: bool = False
    pixel_spacing_mm: tuple[float, float] | None = None
    intensity_range: tuple[float, float] | None = None
    window: tuple[int, int] | None = None
    window_sigma_max: float | None = None

    def __contains__(self, shape: tuple[int, int]) -> bool:
        h, w = shape
        if self.min_size is not None and (h < self.min_size[0] or w < self.min_size[1]):
            return False
        if self.max_size is not None and (h > self.max_size[0] or w > self.max_size[1]):
            return False
        return self.pad or (h % self.multiple_of[0] == 0 and w % self.multiple_of[1] == 0)

    def network_grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The grid the network runs on for images ``shape`` (padded up to the multiple with ``pad``)."""
        h, w = shape
        if not self.pad:
            return h, w
        return h + -h % self.multiple_of[0], w + -w % self.multiple_of[1]

    def __str__(self) -> str:
        lo, hi, (mh, mw) = self.min_size, self.max_size, self.multiple_of
        if lo is not None and lo == hi:
            return f"exactly {lo[0]}x{lo[1]}"
        parts = []
        if lo is not None:
            parts.append(f">= {lo[0]}x{lo[1]}")
        if hi is not None:
            parts.append(f"<= {hi[0]}x{hi[1]}")
        step = f"{mh}" if mh == mw else f"{mh}x{mw}"
        if self.pad and (mh, mw) != (1, 1):
            parts.append(f"any side (padded to multiples of {step})")
        elif (mh, mw) != (1, 1):
            parts.append(f"multiples of {step}")
        return ", ".join(parts) or "any size"


def _pair(value: Any, where: str, name: str, kind: type = int) -> tuple:
    """``n`` or ``[a, b]`` of positive numbers (ints for ``kind=int``) -> ``(a, b)``; anything else is an error
    naming the sidecar field."""
    items = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    ok = isinstance(items, (list, tuple)) and len(items) == 2 and all(
        isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool) for v in items)
    if ok and kind is int:
        ok = all(v > 0 for v in items)
    if not ok:
        what = "a positive int or [h, w] of positive ints" if kind is int else "[low, high] numbers"
        raise InputError(where, f"expected {what}, got {value!r}", name)
    return kind(items[0]), kind(items[1])


def _interval(value: Any, where: str, name: str, positive: bool) -> tuple[float, float]:
    lo, hi = _pair(value, where, name, float) if isinstance(value, (list, tuple)) else (None, None)
    if lo is None or not lo <= hi or (positive and lo <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise InputError(where, f"expected [low, high] with {need}, got {value!r}", name)
    return lo, hi


def served_shapes(meta: dict[str, Any]) -> ServedShapes | None:
    """Read ``serves`` (falling back to exactly ``image_size``) from a sidecar dict; ``None`` = serves anything.
    A malformed field is an ``InputError`` naming the sidecar and the field."""
    where = f"prior sidecar ({meta.get('weights', 'in memory')})"
    serves = meta.get("serves")
    if serves is None:
        if meta.get("image_size") is None:
            return None
        size = _pair(meta["image_size"], where, "image_size")
        return ServedShapes(size, size)
    if not isinstance(serves, dict):
        raise InputError(where, f"expected an object with keys {list(SERVES_KEYS)}, got {serves!r}", "serves")
    unknown = sorted(set(serves) - set(SERVES_KEYS))
    if unknown:
        raise InputError(where, f"unknown keys {unknown} (allowed: {', '.join(SERVES_KEYS)})", "serves")
    lo = None if serves.get("min_size") is None else _pair(serves["min_size"], where, "serves.min_size")
    hi = None if serves.get("max_size") is None else _pair(serves["max_size"], where, "serves.max_size")
    step = _pair(serves.get("multiple_of", 1), where, "serves.multiple_of")
    pad = serves.get("pad", False)
    if not isinstance(pad, bool):
        raise InputError(where, f"expected true or false, got {pad!r}", "serves.pad")
    spacing = serves.get("pixel_spacing_mm")
    spacing = None if spacing is None else _interval(spacing, where, "serves.pixel_spacing_mm", positive=True)
    levels = serves.get("intensity_range")
    levels = None if levels is None else _interval(levels, where, "serves.intensity_range", positive=False)
    window = None if serves.get("window") is None else _pair(serves["window"], where, "serves.window")
    if window is not None and min(window) < 8:
        raise InputError(where, f"expected window sides >= 8 pixels, got {serves['window']!r}", "serves.window")
    window_sigma_max = serves.get("window_sigma_max")
    if window_sigma_max is not None and (isinstance(window_sigma_max, bool) or not isinstance(
            window_sigma_max, (int, float)) or window_sigma_max <= 0):
        raise InputError(where, f"expected a positive noise level, got {window_sigma_max!r}",
                         "serves.window_sigma_max")
    return ServedShapes(lo, hi, step, pad, spacing, levels, window,
                        None if window_sigma_max is None else float(window_sigma_max))
