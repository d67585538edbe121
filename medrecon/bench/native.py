"""``medrecon bench native``: the shipped fastMRI job on a fully sampled simulated multi-coil file at a native
grid (default 320x320, 15 coils), DDS with the shipped prior run on the data's own grid against CG-SENSE,
L1-wavelet and zero-filled.

The file: MNI152 1 mm held-out axial slices (the band the shipped MRI prior never saw), kept at 1 mm voxels and
zero-padded to ``--size`` (no interpolation), birdcage coils, a smooth random phase, optional complex Gaussian
k-space noise; written with ``write_fastmri`` and its fastMRI RSS reference. The file states no field of view, so
the pixel spacing check does not apply (the template's 1 mm pixels are finer than the prior's 1.65-2.04 mm).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["add_arguments", "main", "write_native_file"]

LABELS = {"dds": "DDS (shipped prior)", "zero_filled": "zero-filled", "cg_sense": "CG-SENSE",
          "l1_wavelet": "L1-wavelet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=320, help="image side in pixels (1 mm)")
    parser.add_argument("--coils", type=int, default=15, help="birdcage coils")
    parser.add_argument("--slices", type=int, default=2, help="held-out slices (of 12)")
    parser.add_argument("--noise", type=float, default=0.0, help="k-space noise std per real component")
    parser.add_argument("--job", default="fastmri_dds_4x.toml", help="shipped (or any) fastMRI job file")
    parser.add_argument("--steps", type=int, default=None, help="override sampler.steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def write_native_file(path: Path, size: int, coils: int, slices: int, noise: float, seed: int = 0) -> Path:
    """A fully sampled ``(slices, coils, size, size)`` fastMRI file of MNI152 held-out slices at 1 mm."""
    from ..io.fastmri import rss_reference, write_fastmri
    from ..io.simulate import simulate_multicoil
    from ..samplers.transitions import gaussian_like
    from ..training.datasets import mni152_heldout_slices

    images = torch.from_numpy(mni152_heldout_slices(size, resample=False)[:slices])
    gen = torch.Generator().manual_seed(seed)
    sim = simulate_multicoil(images, coils=coils, generator=gen)
    kspace = sim.kspace + noise * gaussian_like(sim.kspace, gen) if noise > 0 else sim.kspace
    kspace = kspace.to(torch.complex64)
    return write_fastmri(path, kspace, rss_reference(kspace, (size, size)), acquisition="AXT1")


def main(args: argparse.Namespace) -> int:
    from ..jobs.run import run_job
    from ..jobs.spec import load_spec
    from ..threads import configure_threads

    threads = configure_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_native_file(Path(tmp) / "native.h5", args.size, args.coils, args.slices, args.noise)
        overrides = [f'data.path="{data}"', f'run.out="{Path(tmp) / "out"}"', f'run.device="{args.device}"',
                     "run.outputs=[]", "run.checkpoint_every=0"]
        if args.steps is not None:
            overrides.append(f"sampler.steps={args.steps}")
        spec = load_spec(args.job, overrides)
        result = run_job(spec, progress=False)
    rec = result.record
    sampler = spec.sampler.kind
    nfe = int(rec["chunks"][0]["nfe"]) if rec.get("chunks") else 0
    timings = rec["timings"]
    seconds = {sampler: timings["sampling_s"], **timings["baselines_s"]}
    lines = [
        f"{args.size}x{args.size}, {args.coils} coils, {args.slices} MNI152 held-out slices at 1 mm, noise "
        f"{args.noise:g}, job {Path(args.job).name} ({rec.get('problem', {}).get('mask', '')}; "
        f"{threads} thread(s), {args.device})",
        "",
        "| method | NFE | PSNR dB | SSIM | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, values in result.metrics.items():
        label = LABELS.get(name, name)
        lines.append(f"| {label} | {nfe if name == sampler else 0} | {values['psnr']:.2f} | {values['ssim']:.3f} "
                     f"| {seconds.get(name, float('nan')):.1f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(np.isfinite(v["psnr"]) for v in result.metrics.values()) else 1
