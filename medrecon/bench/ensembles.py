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
from typing import Any

import numpy as np
import torch

__all__ = ["add_arguments", "calibration", "calibration_problem", "main", "parse_samplers"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--particles", default="4,8,16,32", help="comma-separated particle counts")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per run (first 2 discarded)")
    parser.add_argument("--kinds", default="smc,tds", help="comma-separated subset of smc,tds,afdps")
    parser.add_argument("--problems", default="mri,ct", help="comma-separated subset of mri,ct")
    parser.add_argument("--calibration", type=int, default=0,
                        help="instead: interval coverage on this many images drawn from the shipped prior")
    parser.add_argument("--calibration-modality", choices=("mri", "ct"), default="mri")
    parser.add_argument("--calibration-split", choices=("validation", "test"), default="test",
                        help="which prior draws: defaults are chosen on validation, reported on test")
    parser.add_argument("--calibration-samplers", default="smc",
                        help="';'-separated job samplers, each 'kind' or 'kind:option=value,...' "
                             "(e.g. 'smc;smc:ess_floor=0;afdps')")
    parser.add_argument("--calibration-particles", type=int, default=None, help="default: the jobs' default")
    parser.add_argument("--calibration-steps", type=int, default=None, help="default: the jobs' default")
    parser.add_argument("--calibration-noise", type=float, default=0.01,
                        help="measurement noise std: image units for MRI k-space, times the largest sinogram "
                             "value for CT")


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


_SPLIT_SEEDS = {"validation": 1, "test": 0}  # the prior draws' seed of each split


def parse_samplers(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``"smc;smc:ess_floor=0,lam=2"`` -> ``[("smc", {}), ("smc", {"ess_floor": 0.0, "lam": 2.0})]`` (values as
    TOML scalars)."""
    import tomllib

    out = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        kind, _, opts = item.partition(":")
        options = tomllib.loads("\n".join(opts.split(","))) if opts.strip() else {}
        out.append((kind.strip(), options))
    return out


def calibration_problem(modality: str, images: int, noise: float, split: str, device: torch.device):
    """``(prior, truth, problem)``: ``images`` draws of the shipped ``modality`` prior (ancestral DDIM, 40 levels,
    the split's seed), measured with noise: MRI by 8 birdcage coils and a 4x random mask (centre 0.08), complex
    k-space noise ``noise``; CT by 32 parallel-beam views, sinogram noise ``noise`` times its largest value."""
    from medrecon.io.simulate import birdcage_maps
    from medrecon.priors.checkpoint import load_prior
    from medrecon.priors.meta import meta_of, sigma_range
    from medrecon.samplers import DDIM, InverseProblem, karras, run
    from medrecon.samplers.transitions import gaussian_like
    from operators.ct import parallel_beam, sparse_view_angles
    from operators.masks import random_mask
    from operators.mri import multicoil_mri

    prior = load_prior(modality, device)
    lo, hi = sigma_range(meta_of(prior))
    g = torch.Generator(device).manual_seed(_SPLIT_SEEDS[split])
    complex_images = modality == "mri"
    truth = run(DDIM(karras(40, lo, hi), eta=1.0), None, prior, g, shape=(images, 128, 128),
                dtype=torch.complex64 if complex_images else torch.float32, device=device, progress=False).x
    if complex_images:
        op = multicoil_mri(birdcage_maps(8, (128, 128)), random_mask(128, 4, torch.Generator().manual_seed(1),
                                                                       0.08).mask).to(device)
    else:
        op = parallel_beam(128, sparse_view_angles(32)).to(device)
    with torch.no_grad():
        clean = op(truth)
        sigma_y = noise if complex_images else noise * float(clean.abs().max())
        y = clean + sigma_y * gaussian_like(clean, g)
    return prior, truth, InverseProblem(op, y, sigma_y)


def calibration(images: int, samplers: list[tuple[str, dict[str, Any]]], device: torch.device,
                modality: str = "mri", split: str = "test", noise: float = 0.01, particles: int | None = None,
                steps: int | None = None) -> list[str]:
    """Coverage of the ensembles' 90% intervals where the truth is known: images drawn from the shipped prior
    itself (``calibration_problem``), each job sampler (``kind`` with its options; ``particles``/``steps``
    override the jobs' defaults) run on them; coverage of the displayed image (``|x|`` for MRI) over all pixels
    and over the foreground (> 5% of the maximum), z-scores, PSNR of the weighted mean, final ESS and the mean
    weight exponent (1: exact weights). With ``P`` exchangeable draws the interval between the weighted 5% and
    95% quantiles covers a further draw with probability ``(j - i) / (P + 1)`` (0.88 at ``P = 16``), the value an
    exact sampler reaches."""
    from medrecon.jobs.registry import REGISTRY
    from medrecon.metrics import foreground, interval_coverage, psnr, z_scores
    from medrecon.priors.meta import meta_of
    from medrecon.samplers import run

    prior, truth, problem = calibration_problem(modality, images, noise, split, device)
    rows = [f"Calibration on {images} draws of the shipped {modality.upper()} prior ({split} split; "
            + ("8 coils, 4x random, k-space noise" if modality == "mri" else "32 parallel-beam views, sinogram noise")
            + f" {noise}{'' if modality == 'mri' else ' x max'}), {time.strftime('%Y-%m-%d')}, "
            f"{torch.get_num_threads()} threads:", "",
            "| sampler | P x levels | 90% coverage, all pixels | foreground | z std (foreground) | PSNR (dB) | "
            "final ESS | mean weight exponent | s |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, options in samplers:
        options = {**options, **({"particles": particles} if particles else {}), **({"steps": steps} if steps else {})}
        component = REGISTRY.get("sampler", kind)
        sampler = component.build(meta_of(prior), **component.validate(options)).sampler
        t0 = time.perf_counter()
        result = run(sampler, problem, prior, torch.Generator(device).manual_seed(7), progress=False)
        seconds = time.perf_counter() - t0
        per_image = []
        for k in range(images):
            ref = truth[k].abs().cpu().numpy()
            mean = result.x[k].abs().cpu().numpy()
            lower, upper = result.outputs["lower"][k].cpu().numpy(), result.outputs["upper"][k].cpu().numpy()
            fg = foreground(ref)
            z = z_scores(ref, mean, result.outputs["std"][k].cpu().numpy())[fg]
            per_image.append((interval_coverage(ref, lower, upper), interval_coverage(ref, lower, upper, fg),
                              float(np.std(z)), float(psnr(ref[None], mean[None], float(ref.max())))))
        table = np.asarray(per_image)
        mean, std = table.mean(0), (table.std(0, ddof=1) if images > 1 else np.zeros(4))
        exponent = result.outputs.get("weight_exponent")
        label = kind + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")
        rows.append(
            f"| {label} | {sampler.particles} x {sampler.num_steps} | {mean[0]:.3f} +- {std[0]:.3f} | "
            f"{mean[1]:.3f} +- {std[1]:.3f} | {mean[2]:.2f} +- {std[2]:.2f} | {mean[3]:.2f} +- {std[3]:.2f} | "
            f"{float(result.outputs['ess'][:, -1].mean()):.2f} | "
            f"{float(exponent.mean()) if exponent is not None else 1.0:.3g} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    return rows


def main(args: argparse.Namespace) -> int:
    from medrecon.bench.samplers import build_timing_prior, mri_problem

    if args.calibration:
        lines = calibration(args.calibration, parse_samplers(args.calibration_samplers), torch.device(args.device),
                            args.calibration_modality, args.calibration_split, args.calibration_noise,
                            args.calibration_particles, args.calibration_steps)
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
