"""``medrecon bench SUITE [options]``: each suite is a module of this package with ``main(args) -> int`` and an
optional ``add_arguments(parser)`` for its own options; only the chosen suite is imported."""
from __future__ import annotations

import argparse
import importlib

SUITES: dict[str, str] = {
    "operators": "MRI forward+adjoint vs the torch.fft floor, sigpy, deepinv, mrpro",
    "ct": "CT projectors vs scikit-image, astra, deepinv",
    "prior": "denoising PSNR of the shipped priors vs a Wiener denoiser; sample grids",
    "quality": "PSNR/SSIM of samplers vs classical baselines on held-out MRI and CT",
    "samplers": "per-step time split (network vs rest) of DDS, DPS, RED-Diff",
    "posterior": "distance of every sampler from exact Gaussian-mixture posteriors",
    "ensembles": "SMC particles per second, memory per particle, calibration on prior draws",
    "active": "planned acquisition masks and views vs fixed ones at the same budget",
    "native": "the shipped fastMRI job at a native grid (320x320, 15 coils): DDS vs CG-SENSE, L1-wavelet",
    "volume": "head-CT volumes: z-coupled DDS, DiffusionMBIR vs slice-wise DDS, FBP, 3D TV, per plane",
    "distributed": "volume-list jobs: local backend vs Ray with 1 and 2 workers (volumes per minute)",
    "ultrasound": "dehazing (gCNR, envelope PSNR), scan-line completion 2x/4x, RF simulation vs PyMUST",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Benchmark suites:\n" + "\n".join(f"  {k:<10} {v}" for k, v in SUITES.items())
    parser.add_argument("suite", choices=sorted(SUITES), help="which benchmark to run")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the suite's own options (see SUITE --help)")


def suite_parser(name: str) -> argparse.ArgumentParser:
    """Parser of one suite: common options plus the suite's own."""
    module = importlib.import_module(f"medrecon.bench.{name}")
    p = argparse.ArgumentParser(prog=f"medrecon bench {name}", description=SUITES[name])
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (smoke test)")
    if hasattr(module, "add_arguments"):
        module.add_arguments(p)
    p.set_defaults(_suite_main=module.main)
    return p


def main(args: argparse.Namespace) -> int:
    suite_args = suite_parser(args.suite).parse_args(args.options)
    return int(suite_args._suite_main(suite_args) or 0)
