"""``medrecon demo``: reconstruct the shipped fastMRI-format multi-coil sample at 4x with DDS and the shipped
MRI prior, beside zero-filled, CG-SENSE and L1-wavelet; print a PSNR/SSIM table, write the figure and outputs.

It is the packaged job ``medrecon/configs/fastmri_dds_4x.toml`` run with the options below.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEMO_JOB = CONFIG_DIR / "fastmri_dds_4x.toml"

EXAMPLES = """examples:
  medrecon demo                          # writes ./medrecon-demo/ (figure.png, reconstructions/, record.json)
  medrecon demo --out /tmp/demo --mask random
  medrecon demo --steps 20 --quiet
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--out", default="medrecon-demo", help="output folder (default: ./medrecon-demo)")
    parser.add_argument(
        "--mask",
        choices=("equispaced", "random", "random_fixed"),
        default="equispaced",
        help="fastMRI mask function (4x, centre fraction 0.08)",
    )
    parser.add_argument("--steps", type=int, default=50, help="DDS steps = network calls (default 50)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def demo_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of the packaged job that the demo's options stand for."""
    return [f'operator.mask="{args.mask}"', f"sampler.steps={args.steps}", f'run.device="{args.device}"']


def main(args: argparse.Namespace) -> int:
    from .acquisition import describe_acquisition
    from .report import format_metrics_table
    from .run import run_job
    from .spec import load_spec

    start = time.perf_counter()
    spec = load_spec(DEMO_JOB, demo_overrides(args))
    result = run_job(spec, out=args.out, progress=not args.quiet)
    info = result.record["problem"]
    print(
        f"fastMRI-format sample: {info['slices']} slices, {info['coils']} coils, {info['matrix'][0]}x"
        f"{info['matrix'][1]}; {describe_acquisition(info)}; DDS {spec.sampler.options['steps']} NFE"
    )
    print(format_metrics_table(result.metrics, result.record["timings"], spec.sampler.kind))
    print(
        f"wall time {time.perf_counter() - start:.1f} s; outputs in {result.out}/ (figure.png, "
        f"reconstructions/, record.json)"
    )
    return 0
