"""``medrecon bench distributed``: throughput of a job listing many CT volumes, local backend vs Ray workers.

Writes ``--volumes`` simulated head phantoms (``ct_phantom``-style Shepp-Logan volumes in HU, NIfTI) to a
temporary folder, and runs one job listing them (parallel beam, ``--views`` views, DDS with the shipped CT
prior, ``--steps`` steps, one chunk a volume). It runs the job three ways, each with every item at one torch
thread: the local backend, Ray with 1 worker CPU, and Ray with 2. It prints wall time, volumes per minute and
the speed-up over the local backend, and checks that every backend wrote the same reconstructions. Ray's
start-up is included in its times and printed separately.
"""
from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--volumes", type=int, default=4, help="volumes in the job")
    parser.add_argument("--slices", type=int, default=4, help="slices a volume (one work item)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="DDS steps (network calls a volume)")
    parser.add_argument("--workers", default="1,2", help="Ray worker CPUs to try, comma separated")


def _write_job(root: Path, args: argparse.Namespace) -> Path:
    from ..io.nifti import write_nifti
    from ..jobs.components import shepp_logan_volume

    for k in range(args.volumes):
        hu = np.moveaxis(shepp_logan_volume(args.size, args.slices), 0, -1) * (1.0 + 0.05 * k)
        write_nifti(root / f"head{k:02d}.nii.gz", hu, np.diag([1.0, 1.0, 2.0, 1.0]))
    job = root / "volumes.toml"
    job.write_text(textwrap.dedent(f"""\
        [data]
        kind = "nifti"
        path = ["head*.nii.gz"]

        [operator]
        kind = "parallel_beam_ct"
        views = {args.views}
        noise = 0.005

        [prior]
        kind = "default"

        [sampler]
        kind = "dds"
        steps = {args.steps}

        [run]
        batch_size = {args.slices}
        checkpoint_every = 0
        outputs = ["nifti"]
        """))
    return job


def _timed_run(job: Path, out: Path, backend) -> tuple[float, list[np.ndarray]]:
    from ..jobs.run import run_jobs
    from ..jobs.spec import load_volume_jobs

    t0 = time.perf_counter()
    results = run_jobs(load_volume_jobs(job, out=out), progress=False, backend=backend)
    return time.perf_counter() - t0, [r.reconstruction for r in results]


def main(args: argparse.Namespace) -> int:
    from ..jobs.backends import LocalBackend, RayBackend
    from ..jobs.run import source_commit

    torch.set_num_threads(1)
    rows, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        job = _write_job(root, args)
        local_s, reference = _timed_run(job, root / "local", LocalBackend())
        rows.append(("local (this process, 1 thread)", local_s, 0.0, True))
        for workers in [int(w) for w in args.workers.split(",") if w]:
            backend = RayBackend(num_cpus=workers)
            t0 = time.perf_counter()
            backend.connect()
            startup = time.perf_counter() - t0
            try:
                seconds, recon = _timed_run(job, root / f"ray{workers}", backend)
            finally:
                backend.close()
            same = all(np.array_equal(a, b) for a, b in zip(reference, recon))
            rows.append((f"Ray, {workers} worker CPU{'s' if workers > 1 else ''}", seconds + startup, startup, same))
    lines.append(f"commit {source_commit()}; {args.volumes} volumes x {args.slices} slices of {args.size}^2, "
                 f"{args.views} views, DDS {args.steps} steps, shipped CT prior, 1 torch thread an item")
    lines.append("")
    lines.append("| backend | wall s | Ray start-up s | volumes / min | vs local | same output |")
    lines.append("|---|---|---|---|---|---|")
    for name, seconds, startup, same in rows:
        lines.append(f"| {name} | {seconds:.1f} | {startup:.1f} | {60 * args.volumes / seconds:.2f} | "
                     f"{local_s / seconds:.2f}x | {'yes' if same else 'NO'} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
