"""``medrecon list [SECTION]``: the shipped example jobs, and the registry's data kinds, operators, priors,
samplers and baselines with their options."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from .registry import REGISTRY, SECTIONS, Registry, _type_name

EXAMPLES = """examples:
  medrecon list              # everything a job file can name, with its options
  medrecon list sampler      # one section
  medrecon list jobs         # the shipped example jobs, runnable by name: medrecon run fastmri_dds_4x.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("section", nargs="?", choices=("jobs", *SECTIONS, "run"), help="show only this section")


def describe(registry: Registry = REGISTRY, section: str | None = None) -> str:
    """The text ``medrecon list`` prints: per section, each name, its summary and its options."""
    from .shipped import SHIPPED_DIR, describe_shipped
    from .spec import RunOptions

    lines: list[str] = []
    if section in (None, "jobs"):
        lines.append(f"shipped jobs (medrecon run NAME, medrecon check NAME; files in {SHIPPED_DIR})")
        lines.extend(describe_shipped())
        lines.append("")
    for sec in SECTIONS:
        if section not in (None, sec):
            continue
        if sec == "baseline":
            lines.append("[run] baselines = [NAME, ...]; options in [baseline.NAME] tables")
        else:
            lines.append(f"[{sec}] kind = NAME")
        for name in registry.names(sec):
            comp = registry.get(sec, name)
            lines.append(f"  {name}: {comp.summary}")
            for opt in comp.options.values():
                lines.append(f"      {opt.describe()}")
        lines.append("")
    if section in (None, "run"):
        lines.append("[run]")
        hints = typing.get_type_hints(RunOptions)
        for f in dataclasses.fields(RunOptions):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"      {f.name}: {_type_name(hints[f.name])} (default {default!r})")
    return "\n".join(lines).rstrip() + "\n"


def main(args: argparse.Namespace) -> int:
    print(describe(REGISTRY, args.section), end="")
    return 0
