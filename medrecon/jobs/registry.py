"""One explicit registry of named job components; each constructor's signature is its schema.

A component is a function whose *keyword-only* parameters are the options a job file may set (with their type
hints and defaults); its positional parameters are the context the job runner passes in (the loaded data,
say). An unknown or misspelt option is a ``ConfigError`` naming it, the allowed ones and the closest match; a
value of the wrong type is a ``ConfigError`` naming the expected type.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from ..errors import ConfigError

__all__ = ["REGISTRY", "SECTIONS", "Component", "Option", "Registry", "check_value", "closest"]

SECTIONS = ("data", "operator", "prior", "sampler", "baseline")


def closest(name: str, allowed: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or an empty string."""
    match = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.5)
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
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{where} = {value!r}: expected {_type_name(tp)}, got {type(value).__name__}")


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

    return {
        "data": {
            "fastmri": c.fastmri_data,
            "nifti": c.nifti_data,
            "ct_phantom": c.ct_phantom_data,
            "mri_slices": image_sets.mri_slices,
            "ct_slices": image_sets.ct_slices,
        },
        "operator": {
            "multicoil_mri": c.multicoil_mri_operator,
            "parallel_beam_ct": c.parallel_beam_operator,
            "fan_beam_ct": c.fan_beam_operator,
        },
        "prior": {
            "default": c.default_prior,
            "checkpoint": c.checkpoint_prior,
        },
        "sampler": c.sampler_entries(),
        "baseline": c.baseline_entries(),
    }


REGISTRY = Registry(_default_entries())
