"""``medrecon check``'s run-time estimate: a one-call probe of the prior at the job's chunk size, times the
network calls, plus the data-consistency and baseline work timed on one slice.

The probe runs one denoiser call on a warm-up batch of one slice and one on a full chunk (with a backward pass
for samplers that differentiate through the prior); the operator's ``normal`` is timed on one chunk and counted
once per CG iteration of the data-consistency step; each baseline runs once on one slice and is scaled by the
number of slices.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["RunTimeEstimate", "estimate_run_time"]

@dataclass(frozen=True)
class RunTimeEstimate:
    """Seconds by part; ``total_s`` is what ``check`` prints."""

    network_call_s: float
    calls_per_chunk: int
    chunks: int
    sampler_s: float
    baselines_s: float
    setup_s: float

    @property
    def total_s(self) -> float:
        return self.sampler_s + self.baselines_s + self.setup_s

    def describe(self) -> str:
        return (
            f"estimated run time: ~{self.total_s:.0f} s (sampler {self.sampler_s:.0f} s: {self.chunks} chunks x "
            f"{self.calls_per_chunk} network calls x {self.network_call_s:.2f} s plus data consistency; "
            f"baselines {self.baselines_s:.0f} s; setup {self.setup_s:.0f} s)"
        )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _network_call_s(job: Any, batch: int) -> float:
    """Seconds of one denoiser call on ``batch`` slices of the job's image shape (after a one-slice warm-up)."""
    problem, prior, device = job.problem, job.prior, job.device
    sigma = 1.0
    grad = bool(getattr(job.sampler.sampler, "requires_grad", False))

    def call(b: int) -> None:
        x = torch.randn((b, *problem.image_shape), dtype=problem.dtype, generator=torch.Generator().manual_seed(0))
        x = x.to(device)
        if grad:
            x.requires_grad_(True)
            with torch.enable_grad():
                out = prior(x, sigma)
                torch.autograd.grad(out.abs().sum() if out.is_complex() else out.sum(), x)
        else:
            with torch.no_grad():
                prior(x, sigma)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call(1)
    return _timed(lambda: call(batch))


def _calls_per_step(sampler: Any) -> int:
    return 1 + int(getattr(sampler, "corrector_steps", 0) or 0)


def _dc_iters(sampler: Any) -> int:
    dc = getattr(sampler, "dc", None)
    return 0 if dc is None else int(getattr(dc, "iters", 1) or 1)


def _baselines_s(job: Any) -> float:
    """Each baseline run on one slice with its own options, scaled to every slice."""
    problem = job.problem
    op = problem.operator_for(slice(0, 1)).to(job.device)
    y = problem.y[:1].to(job.device)
    total = 0.0
    for build in job.baselines.values():
        with torch.no_grad():
            total += _timed(lambda: build(y, op)) * problem.num_slices
    return total


def estimate_run_time(job: Any, setup_s: float = 0.0) -> RunTimeEstimate:
    """Estimate ``run_job``'s wall time for a prepared job (``prepare_job``); ``setup_s`` is what preparing took
    (it is repeated by ``run``)."""
    problem, run = job.problem, job.spec.run
    from .run import chunk_size

    size = chunk_size(job.sampler, problem.num_slices, run.batch_size, run.slab_slices)
    batch = min(size, problem.num_slices)
    chunks = -(-problem.num_slices // size)
    sampler = job.sampler.sampler
    steps = int(sampler.num_steps)
    calls = steps * _calls_per_step(sampler)
    call_s = _network_call_s(job, batch * int(getattr(sampler, "samples_per_image", 1)))  # SMC: P per slice
    call_s *= job.sampler.sources  # a joint sampler calls one network per stacked source
    op = problem.operator_for(slice(0, batch)).to(job.device)
    x = torch.zeros((batch, *problem.domain_shape), dtype=problem.dtype, device=job.device)
    with torch.no_grad():
        op.normal(x)
        normal_s = _timed(lambda: op.normal(x))
    sampler_s = chunks * (calls * call_s + steps * (_dc_iters(sampler) + 1) * normal_s)
    return RunTimeEstimate(call_s, calls, chunks, sampler_s, _baselines_s(job), setup_s)
