"""``medrecon bench native``: the shipped fastMRI job on a fully sampled simulated multi-coil file at a native
grid (default 320x320, 15 coils), DDS with the shipped prior run on the data's own grid against CG-SENSE,
L1-wavelet and zero-filled.

The file: MNI152 1 mm held-out axial slices (the band the shipped MRI prior never saw), kept at 1 mm voxels and
zero-padded to ``--size`` (no interpolation), birdcage coils, a smooth random phase, optional complex Gaussian
k-space noise; written with ``write_fastmri`` and an RSS reference: of the noiseless k-space by default (the
truth, so that noisy runs score denoising), of the noisy k-space with ``--reference noisy`` (fastMRI's own
convention). By default the file states its field of view (1 mm pixels), so the prior's pixel-spacing check
applies; ``--no-fov`` leaves it out.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["add_arguments", "main", "recon_size", "write_native_file"]

LABELS = {"dds": "DDS", "zero_filled": "zero-filled", "cg_sense": "CG-SENSE",
          "l1_wavelet": "L1-wavelet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs="+", default=[320], metavar="N",
                        help="k-space grid: one side (square) or rows and columns, e.g. 640 368 (1 mm pixels; "
                             "reconstructed at the fastMRI recon size, 320x320 for 640x368)")
    parser.add_argument("--coils", type=int, default=15, help="birdcage coils")
    parser.add_argument("--slices", type=int, default=2, help="held-out slices (of 12)")
    parser.add_argument("--noise", type=float, default=0.0, help="k-space noise std per real component")
    parser.add_argument("--job", default="fastmri_dds_4x.toml", help="shipped (or any) fastMRI job file")
    parser.add_argument("--prior", default=None,
                        help="override the job's prior: a shipped prior's name (e.g. mri) or a checkpoint sidecar .json")
    parser.add_argument("--no-fov", action="store_true",
                        help="write no field of view (the prior's pixel-spacing check then does not apply)")
    parser.add_argument("--reference", choices=("clean", "noisy"), default="clean",
                        help="RSS reference of the noiseless k-space (default) or of the noisy one (fastMRI's)")
    parser.add_argument("--images", choices=("heldout", "validation"), default="heldout",
                        help="MNI152 held-out slices (z 100-111, what is reported) or the validation slices "
                             "(z 95, 97, 99, 112, 114, 116: for choosing settings)")
    parser.add_argument("--steps", type=int, default=None, help="override sampler.steps")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one job option (a TOML literal), e.g. sampler.cg_iters=10 (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def recon_size(grid: tuple[int, int]) -> tuple[int, int]:
    """fastMRI's recon size of a k-space grid: 320x320 for the 640x368 brain and knee grids (readout
    oversampled twice), otherwise the grid itself."""
    return (grid[0] // 2, grid[0] // 2) if grid[0] >= 2 * 320 and grid[1] >= grid[0] // 2 else grid


def write_native_file(path: Path, size: int | tuple[int, int], coils: int, slices: int, noise: float,
                      seed: int = 0, fov: bool = True, clean_reference: bool = True,
                      images: str = "heldout") -> Path:
    """A fully sampled ``(slices, coils, H, W)`` fastMRI file of MNI152 held-out slices at 1 mm, zero-padded to the
    grid ``size`` (``H = W = size`` for an int), with the RSS reference at ``recon_size`` (of the noiseless
    k-space with ``clean_reference``, else of the noisy one) and, with ``fov``, the header's field of view (1 mm
    recon pixels). ``images = "validation"`` takes the MNI152 validation slices instead of the held-out ones."""
    from ..io.fastmri import rss_reference, write_fastmri
    from ..io.simulate import simulate_multicoil
    from ..samplers.transitions import gaussian_like
    from ..jobs.image_sets import mri_validation_slices
    from ..training.datasets import mni152_heldout_slices

    h, w = (size, size) if isinstance(size, int) else size
    load = {"heldout": mni152_heldout_slices, "validation": mri_validation_slices}[images]
    square = load(max(h, w), resample=False)[:slices]
    top, left = (max(h, w) - h) // 2, (max(h, w) - w) // 2
    images = torch.from_numpy(np.ascontiguousarray(square[:, top:top + h, left:left + w]))
    gen = torch.Generator().manual_seed(seed)
    sim = simulate_multicoil(images, coils=coils, generator=gen)
    kspace = sim.kspace + noise * gaussian_like(sim.kspace, gen) if noise > 0 else sim.kspace
    kspace = kspace.to(torch.complex64)
    rec = recon_size((h, w))
    reference = rss_reference(sim.kspace.to(torch.complex64) if clean_reference else kspace, rec)
    return write_fastmri(path, kspace, reference, acquisition="AXT1", recon_size=rec,
                         fov_mm=(float(rec[1]), float(rec[0])) if fov else None)


def main(args: argparse.Namespace) -> int:
    from ..jobs.run import run_job
    from ..jobs.spec import load_spec
    from ..threads import configure_threads

    threads = configure_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if len(args.size) > 2:
            raise SystemExit("--size takes one side or rows and columns")
        grid = (args.size[0], args.size[-1])
        data = write_native_file(Path(tmp) / "native.h5", grid, args.coils, args.slices, args.noise,
                                 fov=not args.no_fov, clean_reference=args.reference == "clean",
                                 images=args.images)
        overrides = [f'data.path="{data}"', f'run.out="{Path(tmp) / "out"}"', f'run.device="{args.device}"',
                     "run.outputs=[]", "run.checkpoint_every=0"]
        if args.steps is not None:
            overrides.append(f"sampler.steps={args.steps}")
        if args.prior is not None and args.prior.endswith(".json"):
            overrides += ['prior.kind="checkpoint"', f'prior.path="{Path(args.prior).resolve()}"']
        elif args.prior is not None:
            overrides.append(f'prior.name="{args.prior}"')
        spec = load_spec(args.job, overrides + list(args.overrides))
        result = run_job(spec, progress=False)
    rec = result.record
    sampler = spec.sampler.kind
    nfe = int(rec["chunks"][0]["nfe"]) if rec.get("chunks") else 0
    timings = rec["timings"]
    seconds = {sampler: timings["sampling_s"], **timings["baselines_s"]}
    lines = [
        f"{grid[0]}x{grid[1]} k-space, recon {recon_size(grid)[0]}x{recon_size(grid)[1]}, {args.coils} coils, "
        f"{args.slices} MNI152 {args.images.replace('heldout', 'held-out')} slices at 1 mm, noise {args.noise:g} "
        f"({args.reference} reference){''.join(', ' + o for o in args.overrides)}, "
        f"job {Path(args.job).name}, prior "
        f"{rec['inputs']['prior'].get('weights', spec.prior.kind)} ({rec.get('problem', {}).get('mask', '')}; "
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
