"""``medrecon bench samplers``: per-step wall time of DDS, DPS and RED-Diff split into network time and the rest
(data consistency, guidance gradient, noise, bookkeeping), on simulated multi-coil MRI.

The network is the shipped MRI prior's architecture (``data_manifests/train_prior_mri.toml`` ``[model]``, complex
as two channels, EDM preconditioning) with random weights: timing does not depend on the weights.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

__all__ = ["add_arguments", "build_timing_prior", "main", "mri_problem", "time_sampler"]

MODEL_TOML = Path(__file__).resolve().parents[2] / "data_manifests" / "train_prior_mri.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=12, help="sampler steps timed per run (first 2 discarded)")
    parser.add_argument("--batch", type=int, default=1, help="images per batch")
    parser.add_argument("--configs", default="128x8,320x15", help="comma-separated SIZExCOILS settings")
    parser.add_argument("--samplers", default="dds,dps,reddiff", help="comma-separated subset of dds,dps,reddiff")


def build_timing_prior(device: torch.device, complex_images: bool = True) -> torch.nn.Module:
    """The shipped priors' network (random weights) behind EDM preconditioning: complex-as-channels (MRI) or one
    real channel (CT)."""
    import tomllib

    from medrecon.priors.adapters import AddChannel, ComplexAsChannels, EDMDenoiser
    from medrecon.priors.network import build_unet

    model = tomllib.loads(MODEL_TOML.read_text())["model"]
    channels = 2 if complex_images else 1
    net = build_unet({**model, "in_channels": channels, "out_channels": channels})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    net = net.to(device).eval().requires_grad_(False)
    inner = EDMDenoiser(net, sigma_data=0.5, c_noise_scale=1000.0)
    return (ComplexAsChannels(inner) if complex_images else AddChannel(inner)).to(device)


def mri_problem(size: int, coils: int, batch: int, device: torch.device):
    """Simulated ``batch`` x ``size``^2 multi-coil k-space (birdcage maps, 4x random fastMRI mask)."""
    from medrecon.io.simulate import birdcage_maps
    from medrecon.samplers import InverseProblem
    from operators.masks import random_mask
    from operators.mri import multicoil_mri

    gen = torch.Generator().manual_seed(0)
    op = multicoil_mri(birdcage_maps(coils, (size, size)), random_mask(size, 4, gen).mask).to(device)
    x = torch.randn(batch, size, size, generator=gen, dtype=torch.complex64).to(device)
    with torch.no_grad():
        y = op(x)
    return InverseProblem(op, y, 0.01)


def _sampler(name: str, steps: int):
    from medrecon import samplers

    if name == "dds":
        return samplers.dds(steps)
    if name == "dps":
        return samplers.DPS(samplers.vp_linear(steps), zeta=1.0)
    if name == "reddiff":
        return samplers.REDDiff(steps=steps)
    raise ValueError(f"unknown sampler {name!r}")


def time_sampler(name: str, problem, prior, steps: int, discard: int = 2) -> dict[str, float]:
    """Median per-step seconds (total, network, rest) over ``steps - discard`` steps of one run."""
    from medrecon.samplers import run

    result = run(_sampler(name, steps), problem, prior, torch.Generator(problem.y.device).manual_seed(0),
                 progress=False)
    kept = result.steps[discard:] or result.steps
    total = statistics.median(s.seconds for s in kept)
    net = statistics.median(s.network_seconds for s in kept)
    return {"step_s": total, "network_s": net, "rest_s": total - net, "rest_share": (total - net) / total}


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    names = args.samplers.split(",")
    steps = 4 if args.quick else args.steps
    if args.quick:
        configs = configs[:1]
    prior = build_timing_prior(device)
    rows = []
    for size, coils in configs:
        problem = mri_problem(size, coils, args.batch, device)
        time_sampler("dds", problem, prior, 3, discard=0)  # warm-up (kernels, allocator)
        for name in names:
            t = time_sampler(name, problem, prior, steps)
            rows.append((f"{size}x{size}", coils, name, t))
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [
        (f"Per-step time, batch {args.batch}, device {dev_name}, torch {torch.__version__}, "
         f"{time.strftime('%Y-%m-%d')}; median over steps 3..{steps}."),
        "",
        "| image | coils | sampler | step (ms) | network (ms) | rest (ms) | rest share |",
        "|---|---|---|---|---|---|---|",
    ]
    for image, coils, name, t in rows:
        lines.append(f"| {image} | {coils} | {name} | {1e3 * t['step_s']:.2f} | {1e3 * t['network_s']:.2f} | "
                     f"{1e3 * t['rest_s']:.2f} | {100 * t['rest_share']:.1f}% |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0
