"""``medrecon bench quality``: PSNR / SSIM (mean +- std over images), NFE and wall time of the classical baselines
and the diffusion samplers, every problem built and solved through the job registry (``run_job``), exactly as
``medrecon run`` would: estimated coil maps, the prior's own intensity rule, ``sigma_y = "auto"`` (the simulated
noise level) and the defaults of ``medrecon.defaults``. No setting is chosen by looking at the ground truth.

* MRI: 8 birdcage coils, smooth random phase, complex k-space noise ``--mri-noise`` (the images' 99.5th
  percentile is 1); fastMRI masks, random and equispaced, at 4x (centre 0.08) and 8x (centre 0.04); coil maps
  from the calibration lines (``--coil-maps``). Metrics on cropped magnitudes.
* CT: parallel beam, 8 / 16 / 32 views over 180 degrees, Gaussian sinogram noise ``--ct-noise`` times the largest
  sinogram value.
* Image sets (``--split``): ``test`` reports MNI152's held-out band and the Cranium head-CT test slices (plus the
  held-out CT phantoms with ``--ct-phantoms``); ``validation`` is where the defaults were chosen.
* Per image: PSNR with the image's own maximum as data range (fastMRI's per-volume rule, one slice a volume)
  and SSIM (7 x 7, fastMRI constants).
* ``--oracle``: the MRI DDS row again with the true coil maps and the exact intensity scale and noise level,
  i.e. the ideal pipeline the job path is compared with.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import defaults as D

__all__ = ["Row", "add_arguments", "main", "method_specs", "render", "run_task", "targets", "task_specs"]


@dataclass
class Row:
    task: str
    method: str
    nfe: int
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=6, help="images per task (0: the whole set)")
    parser.add_argument("--modalities", default="mri,ct", help="comma-separated subset of mri,ct")
    parser.add_argument("--tasks", default="", help="comma-separated substrings of task names to keep")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--ct-phantoms", action="store_true", help="also the held-out synthetic CT phantoms")
    parser.add_argument("--mri-noise", type=float, default=0.005, help="k-space noise std (image units)")
    parser.add_argument("--ct-noise", type=float, default=0.005, help="sinogram noise std relative to its max")
    parser.add_argument("--coil-maps", choices=("lowres", "espirit"), default=D.COIL_MAPS.method,
                        help="MRI coil maps from the calibration lines (default: the jobs' default)")
    parser.add_argument("--samplers", default="dds,pc,dps,red_diff",
                        help="comma-separated subset of dds,pc,dps,red_diff,smc,tds")
    parser.add_argument("--particles", type=int, default=D.SMC.particles, help="particles of smc and tds")
    parser.add_argument("--smc-steps", type=int, default=D.SMC.steps, help="noise levels of smc and tds")
    parser.add_argument("--long-steps", type=int, default=None,
                        help="noise levels of the long samplers (default: medrecon.defaults; 25 with --quick)")
    parser.add_argument("--dds-steps", default="20,50", help="comma-separated DDS step counts (3,5 with --quick)")
    parser.add_argument("--oracle", action="store_true", help="MRI DDS with true maps, scale and noise too")
    parser.add_argument("--seed", type=int, default=0)


def task_specs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(name, data section, operator section)`` of every task."""
    count = 2 if args.quick and args.images == 6 else args.images
    tasks = []
    modalities = args.modalities.split(",")
    if "mri" in modalities:
        images = "mni152_heldout" if args.split == "test" else "mni152_validation"
        data = {"kind": "mri_slices", "images": images, "count": count, "noise": args.mri_noise,
                "seed": args.seed}
        for accel, centre in ((4, 0.08), (8, 0.04)):
            for mask in ("random", "equispaced"):
                op = {"kind": "multicoil_mri", "mask": mask, "acceleration": accel, "center_fraction": centre,
                      "coil_maps": args.coil_maps}
                tasks.append((f"MRI {accel}x {mask}", data, op))
    if "ct" in modalities:
        sets = ["cranium_test" if args.split == "test" else "cranium_validation"]
        sets += ["phantom_heldout"] if args.ct_phantoms else []
        for images in sets:
            label = "head CT" if images.startswith("cranium") else "CT phantoms"
            for views in (8, 16, 32):
                data = {"kind": "ct_slices", "images": images, "count": count}
                op = {"kind": "parallel_beam_ct", "views": views, "arc_deg": 180.0, "noise": args.ct_noise}
                tasks.append((f"{label} {views} views", data, op))
    if args.tasks:
        keep = args.tasks.split(",")
        tasks = [t for t in tasks if any(k in t[0] for k in keep)]
    return tasks


def method_specs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """``(label, sampler section)`` of every sampler row, at the defaults of ``medrecon.defaults``."""
    chosen = args.samplers.split(",")
    long_steps = args.long_steps or (25 if args.quick else None)
    rows = []
    if "dds" in chosen:
        for steps in (int(s) for s in ("3,5" if args.quick else args.dds_steps).split(",")):
            rows.append((f"DDS {steps} NFE", {"kind": "dds", "steps": steps}))
    if "pc" in chosen:
        steps = long_steps or D.PC.steps
        nfe = steps * (1 + D.PC.corrector_steps)
        rows.append((f"predictor-corrector {nfe} NFE", {"kind": "score_pc", "steps": steps}))
    if "dps" in chosen:
        steps = long_steps or D.DPS.steps
        rows.append((f"DPS {steps} NFE", {"kind": "dps", "steps": steps}))
    if "red_diff" in chosen:
        steps = D.RED_DIFF.steps if not args.quick else 10
        rows.append((f"RED-Diff {steps} NFE", {"kind": "red_diff", "steps": steps}))
    for kind in ("smc", "tds"):
        if kind in chosen:
            steps = 5 if args.quick else args.smc_steps
            rows.append((f"{kind.upper()} {args.particles} particles x {steps} NFE",
                         {"kind": kind, "particles": args.particles, "steps": steps}))
    return rows


BASELINES = {"mri": ["zero_filled", "cg_sense", "l1_wavelet"], "ct": ["fbp", "cgls", "tv"]}
LABELS = {"zero_filled": "zero-filled", "cg_sense": "CG-SENSE", "l1_wavelet": "L1-wavelet", "fbp": "FBP",
          "cgls": "CGLS", "tv": "TV"}


def _per_image(reference: np.ndarray, recon: np.ndarray) -> tuple[list[float], list[float]]:
    from ..metrics import psnr, ssim

    ps, ss = [], []
    for ref, rec in zip(reference, recon):
        rng = float(ref.max())
        ps.append(float(psnr(ref[None], rec[None], rng)))
        ss.append(float(ssim(ref[None], rec[None], rng)))
    return ps, ss


def _row(task: str, method: str, nfe: int, reference: np.ndarray, recon: np.ndarray, seconds: float) -> Row:
    ps, ss = _per_image(reference, recon)
    return Row(task, method, nfe, float(np.mean(ps)), float(np.std(ps)), float(np.mean(ss)), float(np.std(ss)),
               seconds)


def _spec(data: dict, op: dict, sampler: dict, baselines: list[str], device: str, seed: int, batch: int):
    from ..jobs.spec import parse_spec

    return parse_spec({
        "data": data, "operator": op, "prior": {"kind": "default"}, "sampler": sampler,
        "run": {"seed": seed, "device": device, "batch_size": batch, "sigma_y": "auto", "checkpoint_every": 0,
                "baselines": baselines, "outputs": []},
    })


def run_task(name: str, data: dict, op: dict, methods: list[tuple[str, dict]], device: str, seed: int,
             oracle: bool = False) -> list[Row]:
    """Every baseline and sampler row of one task, each a ``run_job`` of the same data and operator."""
    from ..jobs.run import run_job

    modality = "mri" if data["kind"] == "mri_slices" else "ct"
    rows: list[Row] = []
    batch = 64
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, sampler) in enumerate(methods):
            baselines = BASELINES[modality] if k == 0 else []
            spec = _spec(data, op, sampler, baselines, device, seed, batch)
            result = run_job(spec, out=Path(tmp) / str(k), progress=False)
            ref = result.reference
            timings = result.record["timings"]
            nfe = int(result.record["chunks"][0]["nfe"])
            rows.append(_row(name, label, nfe, ref, result.reconstruction, timings["sampling_s"]))
            unc = result.record.get("uncertainty")
            if unc and "coverage" in unc:
                print(f"{name}, {label}: {unc['level']:.0%} interval coverage {unc['coverage']:.3f} (foreground "
                      f"{unc['coverage_foreground']:.3f}); z std {unc['z_foreground']['std']:.2f}; final ESS "
                      f"{np.mean(unc['ess_final']):.2f}, resampled {np.mean(unc['resamples']):.1f} times",
                      flush=True)
            for base in baselines:
                rows.append(_row(name, LABELS[base], 0, ref, result.baselines[base], timings["baselines_s"][base]))
        if oracle and modality == "mri":
            rows += _oracle_rows(name, data, op, [m for m in methods if m[1]["kind"] == "dds"], device, seed)
    return rows


def _oracle_rows(name: str, data: dict, op: dict, methods: list[tuple[str, dict]], device: str,
                 seed: int) -> list[Row]:
    """DDS with the true coil maps, the exact scale (the images are in prior units) and the true noise level."""
    from operators.mri import multicoil_mri

    from ..jobs.registry import REGISTRY
    from ..jobs.run import magnitude, prepare_job
    from ..samplers import InverseProblem, run

    rows = []
    for label, sampler in methods:
        job = prepare_job(_spec(data, op, sampler, [], device, seed, 64), REGISTRY)
        volume, problem = job.volume, job.problem
        A = multicoil_mri(volume.attrs["coil_maps"].expand(problem.num_slices, -1, -1, -1), problem.mask).to(device)
        inverse = InverseProblem(A, problem.y.to(device), float(volume.attrs["noise_std"]))
        gen = torch.Generator(device=device).manual_seed(seed)
        start = time.perf_counter()
        x = run(job.sampler.sampler, inverse, job.prior, gen, progress=False).x
        seconds = time.perf_counter() - start
        recon = magnitude(x.cpu(), problem.crop)
        rows.append(_row(name, f"{label} (oracle maps, scale, noise)", job.sampler.num_steps,
                         volume.reference.numpy(), recon, seconds))
    return rows


def targets(rows: list[Row]) -> list[str]:
    """DDS at <= 50 NFE vs the best classical baseline (MRI: +2 dB; CT: vs TV, +1 dB), vs the best sampler of
    >= 500 NFE (within 0.5 dB), and the job path vs the oracle pipeline (within 1 dB)."""
    lines = []
    for task in dict.fromkeys(r.task for r in rows):
        rs = [r for r in rows if r.task == task]
        dds = [r for r in rs if r.method.startswith("DDS") and r.nfe <= 50 and "oracle" not in r.method]
        if not dds:
            continue
        best = max(dds, key=lambda r: r.psnr)
        classical = [r for r in rs if r.nfe == 0]
        if task.startswith("MRI"):
            ref, need, what = max(classical, key=lambda r: r.psnr), 2.0, "best classical"
        else:
            ref, need, what = next(r for r in classical if r.method == "TV"), 1.0, "TV"
        gain = best.psnr - ref.psnr
        line = (f"{task}: {best.method} {best.psnr:.2f} dB vs {what} ({ref.method}) {ref.psnr:.2f} dB: "
                f"{gain:+.2f} dB (target >= +{need:g}) {'PASS' if gain >= need else 'FAIL'}")
        longs = [r for r in rs if r.nfe >= 500]
        if longs:
            top = max(longs, key=lambda r: r.psnr)
            gap = top.psnr - best.psnr
            line += (f"; vs {top.method} {top.psnr:.2f} dB: gap {gap:+.2f} dB (target <= 0.5) "
                     f"{'PASS' if gap <= 0.5 else 'FAIL'}")
        for o in (r for r in rs if "oracle" in r.method):
            job = next((r for r in rs if r.method == o.method.split(" (oracle")[0]), None)
            if job is not None:
                loss = o.psnr - job.psnr
                line += (f"; oracle minus job path ({job.method}): {loss:+.2f} dB (target <= 1) "
                         f"{'PASS' if loss <= 1 else 'FAIL'}")
        lines.append(line)
    return lines


def render(rows: list[Row], header: str) -> str:
    """The markdown table of ``rows`` and the target checks."""
    lines = [header, "", "| task | method | NFE | PSNR (dB) | SSIM | time (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        nfe = "-" if r.nfe == 0 else str(r.nfe)
        psnr = "inf" if math.isinf(r.psnr) else f"{r.psnr:.2f} +- {r.psnr_std:.2f}"
        lines.append(f"| {r.task} | {r.method} | {nfe} | {psnr} | {r.ssim:.3f} +- {r.ssim_std:.3f} | "
                     f"{r.seconds:.1f} |")
    lines += ["", "Targets:", ""] + [f"- {t}" for t in targets(rows)]
    return "\n".join(lines)


def _commit() -> str:
    from ..jobs.run import source_commit

    return source_commit()


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    tasks = task_specs(args)
    methods = method_specs(args)
    count = 2 if args.quick and args.images == 6 else args.images
    header = (f"Split {args.split}; {count} images per task; commit {_commit()}; device {dev_name}; torch "
              f"{torch.__version__}; {torch.get_num_threads()} threads; seed {args.seed}; {time.strftime('%Y-%m-%d')}. "
              f"MRI noise {args.mri_noise:g} (k-space, per real component), CT noise {args.ct_noise:g} x max "
              f"sinogram; coil maps {args.coil_maps}. PSNR/SSIM mean +- std over images (per-image data range = "
              "its maximum). Time: the whole batch, seconds.")
    rows: list[Row] = []
    for name, data, op in tasks:
        new = run_task(name, data, op, methods, str(device), args.seed, args.oracle)
        for r in new:
            print(f"{r.task} | {r.method} | {r.nfe} | {r.psnr:.2f} +- {r.psnr_std:.2f} | {r.ssim:.4f} | "
                  f"{r.seconds:.1f}", flush=True)
        rows += new
        if args.out:  # partial results survive an interrupted run
            Path(args.out).write_text(render(rows, header) + "\n")
    print(render(rows, header))
    return 0
