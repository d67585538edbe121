"""``medrecon bench active``: planned acquisitions against fixed masks at the same budget, every mask
reconstructed by the same sampler (the jobs' DDS at its defaults, one chain), on validation images.

* MRI (``mni152_validation``; ``--split test``: ``mni152_heldout``, 8 birdcage coils with their true maps, complex k-space noise ``--mri-noise``):
  fastMRI line masks at 4x (centre 0.08) and 8x (centre 0.04): ``random`` (fastMRI's RandomMaskFunc with the
  line count fixed), ``equispaced`` (EquispacedMaskFractionFunc) and the planned masks, ``adaptive`` (planned per
  image while its posterior is sampled) and ``population`` (planned once on ``mni152_train`` slices, the prior's
  own training images, then fixed for the validation images). With ``--points``: 2D Poisson-disc and Gaussian
  variable-density masks against planned k-space points at the Poisson mask's exact point count.
* CT (``cranium_validation``; ``--split test``: ``cranium_test``, parallel beam over 180 degrees, sinogram noise ``--ct-noise`` x max): uniformly
  spaced views against planned views chosen from ``--ct-candidates`` angles, at 8 and 16 views.
* Planning runs ``--chains`` chains of DDS with ``--plan-steps`` steps, acquiring one candidate per round over
  the first half of the steps (``medrecon.active.acquisition_schedule``), with the Gaussian-mixture entropy
  kernel at its automatic width.
* Per image: PSNR with the image's own maximum as data range and SSIM (as ``bench quality``); mean +- std.
  Planning cost is per planned mask: its network calls (each call evaluates every chain of every image) and
  its wall time (adaptive: the batch's time over its images; population: the whole run).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import defaults as D

__all__ = ["MaskRow", "add_arguments", "main"]


@dataclass
class MaskRow:
    task: str
    mask: str
    samples: str
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    plan_nfe: int
    plan_seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modalities", default="mri,ct", help="comma-separated subset of mri,ct")
    parser.add_argument("--images", type=int, default=6, help="validation images per task")
    parser.add_argument("--train-images", type=int, default=8, help="MRI images a population mask is planned on")
    parser.add_argument("--accelerations", default="4,8", help="MRI accelerations")
    parser.add_argument("--ct-views", default="8,16", help="CT view budgets")
    parser.add_argument("--ct-candidates", type=int, default=144, help="candidate angles over 180 degrees")
    parser.add_argument("--chains", type=int, default=6, help="chains per image while planning")
    parser.add_argument("--plan-steps", type=int, default=30, help="DDS steps of the planning run")
    parser.add_argument("--steps", type=int, default=50, help="DDS steps of every reconstruction")
    parser.add_argument("--points", action="store_true", help="also 2D point masks (Poisson, variable density)")
    parser.add_argument("--no-population", action="store_true", help="skip the MRI population masks")
    parser.add_argument("--diversity", type=float, default=D.ACTIVE.diversity,
                        help="greedy batch diversity penalty (default: medrecon.defaults.ACTIVE)")
    parser.add_argument("--mri-noise", type=float, default=0.005, help="k-space noise std (image units)")
    parser.add_argument("--ct-noise", type=float, default=0.005, help="sinogram noise std relative to its max")
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="validation images (where the defaults were chosen) or the held-out test images")
    parser.add_argument("--seed", type=int, default=0)


def _metrics(reference: np.ndarray, recon: np.ndarray) -> tuple[float, float, float, float]:
    from .quality import _per_image

    ps, ss = _per_image(reference, recon)
    return float(np.mean(ps)), float(np.std(ps)), float(np.mean(ss)), float(np.std(ss))


def _reconstruct(sampler, prior, op, y, sigma_y: float, seed: int) -> torch.Tensor:
    from ..samplers import InverseProblem, run

    return run(sampler, InverseProblem(op, y, sigma_y), prior, torch.Generator().manual_seed(seed),
               progress=False).x


def _plan(planner_sampler, cands, prior, initial, full, budget, args, sigma_y, shared=False, per_round=1):
    from ..active import acquisition_schedule, plan, retrospective

    to_acquire = budget - int(initial.sum())
    rounds = min(to_acquire, args.plan_steps // 2)
    per_round = max(per_round, math.ceil(to_acquire / max(rounds, 1)))
    schedule = acquisition_schedule(args.plan_steps, to_acquire, per_round=per_round, start=1,
                                    stop=max(1, args.plan_steps // 2))
    t0 = time.perf_counter()
    result = plan(planner_sampler, cands, prior, torch.Generator().manual_seed(args.seed + 1), initial=initial,
                  acquire=retrospective(cands, full), schedule=schedule, sigma_y=sigma_y, chains=args.chains,
                  diversity=args.diversity, shared=shared)
    return result, time.perf_counter() - t0


def mri_rows(args: argparse.Namespace, accel: int) -> list[MaskRow]:
    from operators import masks, multicoil_mri

    from ..jobs import sampling
    from ..jobs.image_sets import mri_slices
    from ..jobs.problem import VolumeProblem
    from ..jobs.run import estimate_scale
    from ..active import KSpaceLines, KSpacePoints
    from ..priors import default_prior
    from ..priors.meta import meta_of

    prior = default_prior("mri")
    meta = meta_of(prior)
    recon_sampler = sampling.dds(meta, steps=args.steps).sampler
    plan_sampler = sampling.dds(meta, steps=args.plan_steps).sampler
    centre = masks.default_center_fraction(accel) if accel != 4 else 0.08
    images = "mni152_validation" if args.split == "validation" else "mni152_heldout"
    vol = mri_slices(images=images, count=args.images, coils=8, noise=args.mri_noise, seed=args.seed)
    kspace, smaps = vol.kspace, vol.attrs["coil_maps"].to(torch.complex64)
    ref = vol.reference.numpy()
    s, c, h, w = kspace.shape
    g = torch.Generator().manual_seed(args.seed)
    fixed = {
        "random": masks.random_fixed_mask(w, accel, g, center_fraction=centre).mask,
        "equispaced": masks.equispaced_fraction_mask(w, accel, g, center_fraction=centre).mask,
    }
    budget = int(fixed["random"].sum())
    eq = fixed["equispaced"]
    scale_problem = VolumeProblem(torch.where(eq, kspace, 0), lambda sl: multicoil_mri(smaps if smaps.ndim == 3 else smaps[sl], eq), (h, w),
                                  torch.complex64, (h, w))
    scale = estimate_scale(scale_problem, prior, torch.device("cpu"))["scale"]
    sigma = args.mri_noise / scale
    full = kspace / scale
    task = f"MRI {accel}x"
    rows: list[MaskRow] = []

    def add(name: str, mask: torch.Tensor, samples: str, nfe: int = 0, seconds: float = 0.0) -> None:
        y = torch.where(mask, full, torch.zeros((), dtype=full.dtype))
        x = _reconstruct(recon_sampler, prior, multicoil_mri(smaps, mask), y, sigma, args.seed)
        rows.append(MaskRow(task, name, samples, *_metrics(ref, (x.abs() * scale).numpy()), nfe, seconds))
        print(_line(rows[-1]), flush=True)

    for name, m in fixed.items():
        add(name, m, f"{int(m.sum())} lines")
    lines = KSpaceLines(multicoil_mri(smaps, eq))
    initial = masks.center_mask(w, centre)
    planned, secs = _plan(plan_sampler, lines, prior, initial, full, budget, args, sigma)
    inloop = MaskRow(task, "adaptive (planning chains' mean)", f"{budget} lines",
                     *_metrics(ref, (planned.x.abs() * scale).numpy()), planned.nfe, secs / s)
    add("adaptive", lines.kspace_mask(planned.acquired), f"{budget} lines", planned.nfe, secs / s)
    rows.append(inloop)
    print(_line(inloop), flush=True)
    if not args.no_population:
        train = mri_slices(images="mni152_train", count=args.train_images, coils=8, noise=args.mri_noise,
                           seed=args.seed + 7)
        train_lines = KSpaceLines(multicoil_mri(train.attrs["coil_maps"].to(torch.complex64), eq))
        pop, psecs = _plan(plan_sampler, train_lines, prior, initial, train.kspace / scale, budget, args, sigma,
                           shared=True)
        add("population", pop.acquired[0], f"{budget} lines", pop.nfe, psecs)
    if args.points:
        calib = 20
        poisson = masks.poisson_disc_mask((h, w), accel, g, calib=calib).mask
        count = int(poisson.sum())
        dense = masks.variable_density_mask((h, w), h * w / count, g, calib=calib).mask
        add("Poisson disc", poisson, f"{count} points")
        add("variable density", dense, f"{int(dense.sum())} points")
        pts = KSpacePoints(multicoil_mri(smaps, eq))
        start = torch.zeros(h, w, dtype=torch.bool)
        r0, c0 = (h - calib + 1) // 2, (w - calib + 1) // 2
        start[r0:r0 + calib, c0:c0 + calib] = True
        planned_pts, psecs = _plan(plan_sampler, pts, prior, start.flatten(), full, count, args, sigma)
        add("adaptive points", pts.kspace_mask(planned_pts.acquired), f"{count} points", planned_pts.nfe,
            psecs / s)
    return rows


def ct_rows(args: argparse.Namespace, views: int) -> list[MaskRow]:
    from operators import SelectRows, parallel_beam, sparse_view_angles

    from ..jobs import sampling
    from ..jobs.image_sets import ct_slices
    from ..active import ProjectionViews
    from ..priors import default_prior
    from ..priors.meta import meta_of, normalisation

    prior = default_prior("ct")
    meta = meta_of(prior)
    recon_sampler = sampling.dds(meta, steps=args.steps).sampler
    plan_sampler = sampling.dds(meta, steps=args.plan_steps).sampler
    scale = normalisation(meta).scale
    vol = ct_slices(images="cranium_validation" if args.split == "validation" else "cranium_test", count=args.images)
    image = vol.image
    ref = image.numpy()
    n_cand = args.ct_candidates
    if n_cand % views:
        raise SystemExit(f"--ct-candidates {n_cand} must be a multiple of the view budget {views}")
    angles = sparse_view_angles(n_cand)
    projector = parallel_beam(tuple(image.shape[-2:]), angles)
    with torch.no_grad():
        sino = projector(image)
    g = torch.Generator().manual_seed(args.seed)
    noise = args.ct_noise * float(sino.abs().max())
    sino = sino + noise * torch.randn(sino.shape, generator=g)
    full, sigma = sino / scale, noise / scale
    task = f"head CT {views} views"
    rows: list[MaskRow] = []

    def add(name: str, chosen: torch.Tensor, nfe: int = 0, seconds: float = 0.0) -> None:
        select = SelectRows(chosen, n_cand, dim=-2, sample_dim=-3)
        x = _reconstruct(recon_sampler, prior, select @ projector, select(full), sigma, args.seed)
        rows.append(MaskRow(task, name, f"{views} views", *_metrics(ref, (x * scale).numpy()), nfe, seconds))
        print(_line(rows[-1]), flush=True)

    add("uniform", torch.arange(0, n_cand, n_cand // views))
    cands = ProjectionViews(projector, torch.tensor(angles))
    initial = torch.zeros(n_cand, dtype=torch.bool)
    initial[0] = True
    planned, secs = _plan(plan_sampler, cands, prior, initial, full, views, args, sigma)
    add("adaptive", cands.indices(planned.acquired), planned.nfe, secs / image.shape[0])
    return rows


def _line(row: MaskRow) -> str:
    plan = f"{row.plan_nfe} NFE, {row.plan_seconds:.0f} s" if row.plan_nfe else "-"
    return (f"| {row.task} | {row.mask} | {row.samples} | {row.psnr:.2f} +- {row.psnr_std:.2f} | "
            f"{row.ssim:.4f} +- {row.ssim_std:.4f} | {plan} |")


def render(rows: list[MaskRow], header: str) -> str:
    lines = [header, "", "| task | mask | budget | PSNR (dB) | SSIM | planning per mask |", "|---|---|---|---|---|---|"]
    lines += [_line(r) for r in rows]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    from .quality import _commit

    if args.quick:
        args.images, args.train_images, args.plan_steps, args.steps, args.chains = 2, 2, 6, 6, 2
    torch.manual_seed(args.seed)
    commit = _commit()  # the code that runs, read before the run
    t0 = time.perf_counter()
    rows: list[MaskRow] = []
    modalities = args.modalities.split(",")
    if "mri" in modalities:
        for accel in (int(a) for a in args.accelerations.split(",")):
            rows += mri_rows(args, accel)
    if "ct" in modalities:
        for views in (int(v) for v in args.ct_views.split(",")):
            rows += ct_rows(args, views)
    header = (f"Planned vs fixed acquisitions (commit {commit}, {args.images} {args.split} images, "
              f"diversity {args.diversity:g}, "
              f"{args.chains} chains x {args.plan_steps} DDS steps to plan, DDS {args.steps} steps to reconstruct, "
              f"{torch.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s)")
    table = render(rows, header)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0
