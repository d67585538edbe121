"""``medrecon check JOB``: validate a job without running it.

Checks the spec against the registry, reads the data files (checksums, shapes, NaNs), builds the operator and
the measurements, runs the operator's adjoint (dot) test on one slice, checks the output folder could be
written, and prints the drawn acquisition, the planned work, an estimate of the memory it needs and of the run
time (``medrecon.jobs.estimate``: one probe call of the prior at the job's chunk size). Writes nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from .run_command import add_job_arguments

if TYPE_CHECKING:
    from .spec import JobSpec

EXAMPLES = """examples:
  medrecon check job.toml
  medrecon check fastmri_dds_4x.toml           # a shipped job by name (medrecon list jobs)
  medrecon check job.toml --set operator.acceleration=8 --out runs/8x
  medrecon check volumes.toml                  # data.path = [...]: every volume, each with its own output folder
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_job_arguments(parser, "output folder to check (default: the job's run.out)")


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def estimate_memory(job, batch: int) -> dict[str, int]:
    """Rough peak memory of ``run_job`` in bytes: measurements, one chunk's operator and sampler work tensors,
    the prior's parameters (network activations are not included)."""
    problem = job.problem
    particles = int(getattr(job.sampler.sampler, "samples_per_image", 1))  # SMC: every slice holds P particles
    image = particles * batch * math.prod(problem.domain_shape) * torch.empty((), dtype=problem.dtype).element_size()
    per_slice_y = _bytes(problem.y[0])
    op = problem.operator_for(slice(0, min(batch, problem.num_slices)))
    op_bytes = sum(_bytes(b) for b in op.buffers())
    prior = job.prior
    params = sum(_bytes(p) for p in prior.parameters()) if isinstance(prior, torch.nn.Module) else 0
    params += sum(_bytes(p) for q in job.sampler.further_priors.values() for p in q.parameters())
    return {
        "measurements": _bytes(problem.y),
        "operator (one chunk)": op_bytes,
        "sampler work (one chunk)": 12 * image + 4 * particles * batch * per_slice_y,
        "prior parameters": params,
    }


def main(args: argparse.Namespace) -> int:
    from .spec import load_volume_jobs

    jobs = load_volume_jobs(args.job, args.overrides, out=args.out)
    for k, (spec, out) in enumerate(jobs):
        if len(jobs) > 1:
            print(f"volume    {k + 1} of {len(jobs)}: {spec.data.options.get('path')}")
        check_volume(spec, out)
    return 0


def describe_prior(kind: str, prior: Any, volume: Any) -> str:
    """One line on the prior a job uses: its weights file, what its sidecar serves (pixel sizes, windows) and the
    data's pixel size."""
    from ..priors.meta import served_shapes
    from .compat import data_pixel_spacing

    meta = getattr(prior, "meta", None) or {}
    served = served_shapes(meta) if meta else None
    parts = [f"{meta.get('weights', kind)} ({kind})"]
    if served is not None and served.pixel_spacing_mm is not None:
        parts.append(f"serves {served.pixel_spacing_mm[0]:g}-{served.pixel_spacing_mm[1]:g} mm pixels")
    if served is not None and served.window is not None:
        upto = "" if served.window_sigma_max is None else f" up to sigma {served.window_sigma_max:g}"
        parts.append(f"larger grids denoised in {served.window[0]}x{served.window[1]} windows{upto}")
    found = data_pixel_spacing(volume)
    parts.append("the data states no pixel spacing" if found is None
                 else f"the data's pixels {found[0][0]:.3g}x{found[0][1]:.3g} mm ({found[1]})")
    return "; ".join(parts)


def check_volume(spec: JobSpec, out: Path) -> None:
    """Check one volume job (spec, data, operator, adjoint, output folder) and print its plan and estimates."""
    from operators.testing import check_adjoint

    from .acquisition import describe_acquisition
    from .estimate import estimate_run_time
    from .lock import OutputLock
    from .noise import resolve_sigma_y
    from .run import check_output_dir, chunk_size, prepare_job
    from .sampling import check_sampler_noise
    from .spec import naming_job_file

    print(f"spec      {spec.source}: valid (hash {spec.hash[:12]})")
    t0 = time.perf_counter()
    job = prepare_job(spec)
    setup_s = time.perf_counter() - t0
    sigma_y, noise = resolve_sigma_y(spec.run.sigma_y, job.volume, job.problem)
    check_sampler_noise(job.sampler, sigma_y)
    problem, run = job.problem, spec.run
    if job.volume.path is not None:
        print(f"data      {job.volume.path} (sha256 {job.volume.sha256})")
    info = ", ".join(f"{k}={v}" for k, v in problem.info.items())
    print(f"operator  {spec.operator.kind}: {info}")
    print(f"acquires  {describe_acquisition(problem.info)}")
    print(f"noise     sigma_y = {sigma_y:.4g} (data units, per real component): {noise['source']}")
    print(f"prior     {describe_prior(spec.prior.kind, job.prior, job.volume)}")
    op = problem.operator_for(slice(0, 1))
    try:
        err = check_adjoint(op, (1, *problem.domain_shape), problem.dtype, torch.Generator().manual_seed(0))
    except AssertionError as failure:
        raise InputError(spec.operator.kind, f"operator adjoint test failed: {failure}") from None
    print(f"adjoint   <Ax, y> vs <x, A^H y> on one slice: relative error {err:.1e} (ok)")
    out = check_output_dir(out)
    OutputLock(out).check()
    print(f"output    {out} (writable, not in use)")
    steps = getattr(job.sampler.sampler, "num_steps", None)
    batch = chunk_size(job.sampler, problem.num_slices, run.batch_size, run.slab_slices)
    chunks = -(-problem.num_slices // batch)
    settings = job.sampler.settings or {}
    start = settings.get("start", "noise")
    origin = "" if start == "noise" else f" from {start} at sigma {settings['start_sigma']:g}"
    chains = settings.get("chains", 1)
    averaged = f" x {chains} chains averaged" if chains > 1 else ""
    print(
        f"plan      {problem.num_slices} slices of {problem.image_shape[0]}x{problem.image_shape[1]} in "
        f"{chunks} chunks of <= {batch}; sampler {spec.sampler.kind} with {steps} steps{averaged}{origin} "
        f"({steps} denoiser calls per chunk); baselines: {', '.join(run.baselines) or 'none'}; "
        f"outputs: {', '.join(run.outputs)}"
    )
    mem = estimate_memory(job, batch)
    parts = ", ".join(f"{k} {_human(v)}" for k, v in mem.items())
    print(f"memory    ~{_human(sum(mem.values()))} ({parts}; network activations not included)")
    print(f"time      {estimate_run_time(job, setup_s).describe()}")
    if "plan" in spec.to_dict():  # a [plan] table: check it against the job as plan-mask would
        from .planning import setup_plan

        with naming_job_file(spec.source):
            setup = setup_plan(spec, job)
        print(f"plan-mask {spec.plan.mode} {setup.kind}: {setup.budget} of {len(setup.positions)} "
              f"({int(setup.initial.sum())} kept), {len(setup.schedule.steps)} rounds at sampler steps "
              f"{list(setup.schedule.steps)}, {spec.plan.chains} chains")
