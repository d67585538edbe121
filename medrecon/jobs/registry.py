"""One explicit registry of named job components; each constructor's signature is its schema.

A component is a function whose *keyword-only* parameters are the options a job file may set (with their type
hints and defaults); its positional parameters are the context the job runner passes in (the loaded data,
say). An unknown or misspelt option is a ``ConfigError`` naming it, the allowed ones and the closest match; a
value of the wrong type is a ``ConfigError`` naming the expected type.
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from ..errors import ConfigError

__all__ = [
    "REGISTRY",
    "SECTIONS",
    "Component",
    "Option",
    "Range",
    "Registry",
    "check_value",
    "closest",
    "value_ranges",
]

SECTIONS = ("data", "operator", "prior", "sampler", "baseline")


def closest(name: str, allowed: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or an empty string."""
    match = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to ``tp`` (int -> float, list -> tuple); else ``ConfigError`` naming ``where``.

    Supported hints: bool, int, float, str, ``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``.
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return check_value(value, arg, where)
            except ConfigError as err:
                errors.append(err)
        # a number of the right type but out of bounds (nan, inf, too large) says so rather than "expected"
        bounded = [e for e in errors if ": must be" in str(e) or ": too large" in str(e)]
        if bounded:
            raise bounded[0]
        raise ConfigError(f"{where} = {value!r}: expected {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where} = {value!r}: expected none")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(next(a for a in allowed if a == value)):
            return value
        hint = closest(value, [str(a) for a in allowed]) if isinstance(value, str) else ""
        raise ConfigError(f"{where} = {value!r}: expected one of {', '.join(repr(a) for a in allowed)}{hint}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}: expected {_type_name(tp)}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        items = [check_value(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise ConfigError(f"{where} = {value!r}: too large for a float") from None
            if not math.isfinite(number):
                raise ConfigError(f"{where} = {value!r}: must be a finite number")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{where} = {value!r}: expected {_type_name(tp)}, got {type(value).__name__}")


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric option: ``lo <= v`` (``lo < v`` when ``lo_open``), likewise ``hi``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return "any value"


def value_ranges(**ranges: Range) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the allowed ranges of a component's numeric options (checked by ``Component.validate``, so a job
    with an out-of-range value fails when its spec is read, before any data is loaded)."""

    def mark(build: Callable[..., Any]) -> Callable[..., Any]:
        build.__value_ranges__ = {**getattr(build, "__value_ranges__", {}), **ranges}  # type: ignore[attr-defined]
        return build

    return mark


@dataclass(frozen=True)
class Option:
    """One settable option of a component: its name, type hint and default (``inspect.Parameter.empty``)."""

    name: str
    type: Any
    default: Any

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        default = "required" if self.required else f"default {self.default!r}"
        return f"{self.name}: {_type_name(self.type)} ({default})"


@dataclass(frozen=True)
class Component:
    """A named constructor of one section; ``options`` comes from its keyword-only parameters."""

    section: str
    name: str
    build: Callable[..., Any]

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.build) or ""
        return doc.split("\n\n")[0].replace("\n", " ").replace("``", "")

    @property
    def options(self) -> dict[str, Option]:
        hints = typing.get_type_hints(self.build)
        return {
            p.name: Option(p.name, hints.get(p.name, Any), p.default)
            for p in inspect.signature(self.build).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` type-checked, defaults filled in; ``ConfigError`` naming the bad key."""
        options = self.options
        where = f"[{self.section}] kind = {self.name!r}"
        for key in values:
            if key not in options:
                allowed = ", ".join(options) or "none"
                raise ConfigError(
                    f"unknown key {self.section}.{key} for {where}{closest(key, options)}; "
                    f"allowed keys: {allowed}"
                )
        resolved: dict[str, Any] = {}
        for name, opt in options.items():
            if name in values:
                resolved[name] = check_value(values[name], opt.type, f"{self.section}.{name}")
            elif opt.required:
                raise ConfigError(f"missing key {self.section}.{name} for {where} ({opt.describe()})")
            else:
                resolved[name] = opt.default
        ranges: dict[str, Range] = getattr(self.build, "__value_ranges__", {})
        for name, allowed in ranges.items():
            value = resolved.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value not in allowed:
                raise ConfigError(f"{self.section}.{name} = {value!r}: must be {allowed} for {where}")
        return resolved


class Registry:
    """Names -> constructors, per section (``data``, ``operator``, ``prior``, ``sampler``, ``baseline``)."""

    def __init__(self, entries: dict[str, dict[str, Callable[..., Any]]]):
        unknown = set(entries) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown registry sections {sorted(unknown)}")
        self._entries = {s: {n: Component(s, n, f) for n, f in entries.get(s, {}).items()} for s in SECTIONS}

    def names(self, section: str) -> list[str]:
        """Registered names of ``section`` in registration order."""
        return list(self._entries[section])

    def get(self, section: str, name: str) -> Component:
        """The component ``name`` of ``section``; ``ConfigError`` listing the allowed names otherwise."""
        if section not in self._entries:
            raise ConfigError(f"unknown section [{section}]{closest(section, SECTIONS)}")
        entries = self._entries[section]
        if name not in entries:
            raise ConfigError(
                f"unknown {section}.kind = {name!r}{closest(name, entries)}; allowed: {', '.join(entries)}"
            )
        return entries[name]

    def add(self, section: str, name: str, build: Callable[..., Any]) -> None:
        """Register ``build`` as ``name`` in ``section`` (extensions and tests; names must be new)."""
        if name in self._entries[section]:
            raise ValueError(f"{section}.{name} is already registered")
        self._entries[section][name] = Component(section, name, build)

    def remove(self, section: str, name: str) -> None:
        """Unregister ``name`` from ``section``."""
        del self._entries[section][name]


def _default_entries() -> dict[str, dict[str, Callable[..., Any]]]:
    from . import components as c
    from . import image_sets
    from . import ultrasound as us

    return {
        "data": {
            "fastmri": c.fastmri_data,
            "nifti": c.nifti_data,
            "dicom": c.dicom_data,
            "ct_phantom": c.ct_phantom_data,
            "sinogram": c.sinogram_data,
            "mri_slices": image_sets.mri_slices,
            "ct_slices": image_sets.ct_slices,
            "ultrasound_rf": us.ultrasound_rf_data,
            "ultrasound_phantom": us.ultrasound_phantom_data,
        },
        "operator": {
            "multicoil_mri": c.multicoil_mri_operator,
            "parallel_beam_ct": c.parallel_beam_operator,
            "fan_beam_ct": c.fan_beam_operator,
            "measured_ct": c.measured_ct_operator,
            "ultrasound_scanlines": us.ultrasound_scanlines_operator,
            "ultrasound_haze": us.ultrasound_haze_operator,
        },
        "prior": {
            "default": c.default_prior,
            "checkpoint": c.checkpoint_prior,
            "ultrasound": us.ultrasound_prior,
        },
        "sampler": c.sampler_entries(),
        "baseline": c.baseline_entries(),
    }


REGISTRY = Registry(_default_entries())
