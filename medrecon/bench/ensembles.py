"""``medrecon bench ensembles``: SMC ensembles at image size, on multi-coil MRI (128 x 128, 8 coils) and
sparse-view CT (128 x 128, 32 views), with the shipped priors' architecture (random weights: timing does not
depend on the weights).

For each particle count ``P``: the median seconds per step, seconds per particle-step, the ratio of the step to
the network's own cost inside it (target <= 1.2), the sampler state per particle (iterates, Tweedie estimates,
twist values and gradients: constant when memory is linear in ``P``), and on CUDA the peak allocated memory per
particle.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--particles", default="4,8,16,32", help="comma-separated particle counts")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per run (first 2 discarded)")
    parser.add_argument("--kinds", default="smc,tds", help="comma-separated subset of smc,tds,afdps")
    parser.add_argument("--problems", default="mri,ct", help="comma-separated subset of mri,ct")
    parser.add_argument("--calibration", type=int, default=0,
                        help="instead: coverage on this many images drawn from the shipped MRI prior")
    parser.add_argument("--calibration-particles", type=int, default=16)
    parser.add_argument("--calibration-steps", type=int, default=50)
    parser.add_argument("--calibration-noise", type=float, default=0.01, help="k-space noise std (prior units)")


def _ct_problem(device: torch.device):
    from medrecon.samplers import InverseProblem
    from operators.ct import parallel_beam, sparse_view_angles

    op = parallel_beam(128, sparse_view_angles(32)).to(device)
    x = torch.rand(1, 128, 128, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        y = op(x)
    return InverseProblem(op, y, 0.05)


def _build(kind: str, particles: int, steps: int):
    from medrecon.samplers import karras
    from medrecon.samplers import smc as E

    grid = karras(steps, 0.002, 80.0)
    if kind == "smc":
        return E.smc(particles, sigmas=grid, sigma_data=0.5, cg_iters=20, tol=1e-6)
    if kind == "tds":
        return E.tds(particles, sigmas=grid, sigma_data=0.5, cg_iters=20, tol=1e-6)
    return E.afdps(particles, sigmas=grid, cg_iters=20, tol=1e-6)


def _state_bytes(state) -> int:
    tensors = [state.x, state.x0, state.log_weights, *state.aux.values()]
    return sum(t.numel() * t.element_size() for t in tensors)


def calibration(images: int, particles: int, steps: int, noise: float, device: torch.device) -> list[str]:
    """Coverage of the SMC ensemble's 90% intervals where the truth is a draw of the prior itself.

    Images come from the shipped MRI prior (ancestral DDIM on its grid), are measured by 8 birdcage coils
    and a 4x random mask with k-space noise ``noise``, and are reconstructed by ``smc`` with ``particles``
    particles over ``steps`` levels; coverage of ``|x|`` over all pixels and over the foreground (> 5% of max).
    """
    from medrecon.io.simulate import birdcage_maps
    from medrecon.metrics import foreground, interval_coverage, psnr
    from medrecon.priors.checkpoint import load_prior
    from medrecon.priors.meta import meta_of, sigma_data, sigma_range
    from medrecon.samplers import DDIM, InverseProblem, karras, run
    from medrecon.samplers import smc as E
    from medrecon.samplers.transitions import gaussian_like
    from operators.masks import random_mask
    from operators.mri import multicoil_mri

    prior = load_prior("mri", device)
    meta = meta_of(prior)
    lo, hi = sigma_range(meta)
    g = torch.Generator(device).manual_seed(0)
    truth = run(DDIM(karras(40, lo, hi), eta=1.0), None, prior, g, shape=(images, 128, 128),
                dtype=torch.complex64, device=device, progress=False).x
    op = multicoil_mri(birdcage_maps(8, (128, 128)), random_mask(128, 4, torch.Generator().manual_seed(1),
                                                                   0.08).mask).to(device)
    with torch.no_grad():
        y = op(truth) + noise * gaussian_like(op(truth), g)
    sampler = E.smc(particles, sigmas=karras(steps, lo, hi), sigma_data=sigma_data(meta), cg_iters=20, tol=1e-6)
    t0 = time.perf_counter()
    result = run(sampler, InverseProblem(op, y, noise), prior, g, progress=False)
    seconds = time.perf_counter() - t0
    rows = []
    for k in range(images):
        ref = truth[k].abs().cpu().numpy()
        lower, upper = result.outputs["lower"][k].cpu().numpy(), result.outputs["upper"][k].cpu().numpy()
        rows.append((interval_coverage(ref, lower, upper), interval_coverage(ref, lower, upper, foreground(ref)),
                     float(psnr(ref[None], result.x[k].abs().cpu().numpy()[None], float(ref.max())))))
    cov = torch.tensor(rows, dtype=torch.float64)
    mean, std = cov.mean(0), cov.std(0) if images > 1 else torch.zeros(3)
    return [
        f"Calibration on {images} draws of the shipped MRI prior (8 coils, 4x random, k-space noise {noise}), "
        f"SMC {particles} particles x {steps} levels, {seconds:.0f} s, {time.strftime('%Y-%m-%d')}:",
        "",
        "| 90% interval coverage, all pixels | foreground | PSNR of the weighted mean (dB) | final ESS |",
        "|---|---|---|---|",
        f"| {mean[0]:.3f} +- {std[0]:.3f} | {mean[1]:.3f} +- {std[1]:.3f} | {mean[2]:.2f} +- {std[2]:.2f} | "
        f"{float(result.outputs['ess'][:, -1].mean()):.2f} |",
    ]


def main(args: argparse.Namespace) -> int:
    from medrecon.bench.samplers import build_timing_prior, mri_problem

    if args.calibration:
        lines = calibration(args.calibration, args.calibration_particles, args.calibration_steps,
                            args.calibration_noise, torch.device(args.device))
        print("\n".join(lines))
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return 0
    from medrecon.samplers import run

    device = torch.device(args.device)
    counts = [int(p) for p in args.particles.split(",")]
    if args.quick:
        counts = counts[:2]
    steps = 4 if args.quick else args.steps
    lines = [f"SMC ensembles, device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
             f"{time.strftime('%Y-%m-%d')}; median over steps 3..{steps}.", "",
             "| problem | sampler | P | step (s) | s per particle-step | step / network | state per particle (MiB) "
             "| CUDA peak per particle (MiB) |", "|---|---|---|---|---|---|---|---|"]
    for problem_name in args.problems.split(","):
        prior = build_timing_prior(device, complex_images=problem_name == "mri")
        problem = mri_problem(128, 8, 1, device) if problem_name == "mri" else _ct_problem(device)
        for kind in args.kinds.split(","):
            for p in counts:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                result = run(_build(kind, p, steps), problem, prior, torch.Generator(device).manual_seed(0),
                             progress=False)
                kept = result.steps[2:] or result.steps
                step = statistics.median(s.seconds for s in kept)
                net = statistics.median(s.network_seconds for s in kept)
                state_mib = _state_bytes(result.state) / p / 2**20
                peak = f"{torch.cuda.max_memory_allocated(device) / p / 2**20:.1f}" if device.type == "cuda" else "-"
                lines.append(f"| {problem_name} | {kind} | {p} | {step:.3f} | {step / p:.4f} | {step / net:.2f} | "
                             f"{state_mib:.2f} | {peak} |")
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0
