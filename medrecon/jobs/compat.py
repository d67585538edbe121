"""Whether a prior can serve a job's image grid, decided from the prior's sidecar before any sampling.

A sidecar (``medrecon/priors/default/*.json``, see ``medrecon.priors.checkpoint``) records ``image_size``
``[h, w]``, the grid the network was trained on. An optional ``serves`` field widens that::

    "serves": {"min_size": [h, w], "max_size": [h, w], "multiple_of": 8}

Every key is optional (``multiple_of`` may also be ``[mh, mw]``); without ``serves`` the prior serves exactly
``image_size``. A prior whose meta has neither (analytic or test denoisers) serves every grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = ["ServedShapes", "check_prior_serves", "served_shapes"]


@dataclass(frozen=True)
class ServedShapes:
    """The grids ``(h, w)`` a prior serves: ``min_size <= (h, w) <= max_size`` and ``h, w`` multiples of
    ``multiple_of`` (each bound optional)."""

    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    multiple_of: tuple[int, int] = (1, 1)

    def __contains__(self, shape: tuple[int, int]) -> bool:
        h, w = shape
        if self.min_size is not None and (h < self.min_size[0] or w < self.min_size[1]):
            return False
        if self.max_size is not None and (h > self.max_size[0] or w > self.max_size[1]):
            return False
        return h % self.multiple_of[0] == 0 and w % self.multiple_of[1] == 0

    def __str__(self) -> str:
        lo, hi, (mh, mw) = self.min_size, self.max_size, self.multiple_of
        if lo is not None and lo == hi:
            return f"exactly {lo[0]}x{lo[1]}"
        parts = []
        if lo is not None:
            parts.append(f">= {lo[0]}x{lo[1]}")
        if hi is not None:
            parts.append(f"<= {hi[0]}x{hi[1]}")
        if (mh, mw) != (1, 1):
            parts.append(f"multiples of {mh}" if mh == mw else f"multiples of {mh}x{mw}")
        return ", ".join(parts) or "any size"


def _pair(value: Any, where: str, name: str) -> tuple[int, int]:
    """``n`` or ``[h, w]`` of positive ints -> ``(h, w)``; anything else is an error naming the sidecar field."""
    items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(items, (list, tuple))
        or len(items) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
    ):
        raise InputError(where, f"expected a positive int or [h, w] of positive ints, got {value!r}", name)
    return int(items[0]), int(items[1])


def served_shapes(prior_meta: dict) -> ServedShapes | None:
    """Read ``serves`` (falling back to exactly ``image_size``) from a sidecar dict; ``None`` = any grid."""
    where = f"prior sidecar ({prior_meta.get('weights', 'in memory')})"
    serves = prior_meta.get("serves")
    if serves is None:
        if prior_meta.get("image_size") is None:
            return None
        size = _pair(prior_meta["image_size"], where, "image_size")
        return ServedShapes(size, size)
    if not isinstance(serves, dict):
        raise InputError(where, f"expected an object {{min_size, max_size, multiple_of}}, got {serves!r}", "serves")
    unknown = sorted(set(serves) - {"min_size", "max_size", "multiple_of"})
    if unknown:
        raise InputError(where, f"unknown keys {unknown} (allowed: min_size, max_size, multiple_of)", "serves")
    lo = None if serves.get("min_size") is None else _pair(serves["min_size"], where, "serves.min_size")
    hi = None if serves.get("max_size") is None else _pair(serves["max_size"], where, "serves.max_size")
    step = _pair(serves.get("multiple_of", 1), where, "serves.multiple_of")
    return ServedShapes(lo, hi, step)


def check_prior_serves(prior_meta: dict, image_shape: tuple[int, int], source: str) -> None:
    """Raise ``InputError`` (one line naming ``source``, the prior's served grids and the data's grid) when a prior
    cannot serve images ``image_shape`` ``(H, W)``; ``source`` is the data file (or data kind).

    The grid is the one the sampler works on: the full k-space grid for MRI (e.g. 640x368 for fastMRI knee, of
    which 320x320 is kept), the image grid for CT.
    """
    served = served_shapes(prior_meta or {})
    shape = (int(image_shape[0]), int(image_shape[1]))
    if served is None or shape in served:
        return
    name = prior_meta.get("weights", "the prior")
    field = "serves" if "serves" in prior_meta else "image_size"
    raise InputError(
        source,
        f"the data's image grid is {shape[0]}x{shape[1]} but the prior {name} serves {served} (its sidecar's "
        f"{field}); use a prior trained for {shape[0]}x{shape[1]} images or resample the data",
        field={"mri": "kspace", "ct": "image"}.get(prior_meta.get("modality", "")),
    )
