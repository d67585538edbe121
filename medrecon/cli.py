"""``medrecon`` command line: ``run | check | list | demo | plan-mask | train-prior | bench ...``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``; the module is
imported only when its command runs, so ``medrecon --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import MedreconError
from .threads import configure_threads, prefer_passive_wait

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("medrecon.jobs.run_command", "run a reconstruction job from a TOML/YAML spec"),
    "check": ("medrecon.jobs.check_command", "validate a job spec, its data and operator without running it"),
    "list": ("medrecon.jobs.list_command", "list the registered operators, priors and samplers"),
    "demo": ("medrecon.jobs.demo", "reconstruct the shipped fastMRI-format sample (the README's first command)"),
    "plan-mask": ("medrecon.jobs.plan_command", "plan an acquisition mask (k-space lines, CT views) by active subsampling"),
    "train-prior": ("medrecon.training.train", "train a 2D diffusion prior from a TOML config"),
    "import-checkpoint": ("medrecon.priors.import_command",
                          "convert a public ADM / NCSN++ checkpoint (.pt) into a safetensors prior, once"),
    "bench": ("medrecon.bench.cli", "benchmarks against peer libraries (operators, ct, prior, quality, samplers)"),
}


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="medrecon",
        description="Reconstruct medical images with physics operators and diffusion priors.",
        epilog="Examples:\n  medrecon demo\n  medrecon check job.toml\n  medrecon run job.toml --set sampler.steps=20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (target, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument(
            "--threads",
            type=_threads,
            default=None,
            metavar="N",
            help="torch CPU threads (default: OMP_NUM_THREADS if set, else the physical cores)",
        )
        if name == command:
            module = importlib.import_module(target)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 user error)."""
    argv = sys.argv[1:] if argv is None else argv
    prefer_passive_wait()  # before torch is imported; see medrecon.threads for the measurements
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        configure_threads(args.threads)
        return int(args._main(args) or 0)
    except MedreconError as err:
        print(f"medrecon {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medrecon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
