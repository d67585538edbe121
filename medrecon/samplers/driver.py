"""The one loop every sampler runs in: autograd mode, progress, callbacks, timing, checkpoint/resume, batching."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medrecon.priors.base import Denoiser

from .checkpoint import load_checkpoint, save_checkpoint
from .problem import InverseProblem
from .state import Sampler, State

__all__ = ["RunResult", "StepInfo", "TimedDenoiser", "run", "timed_step"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedDenoiser:
    """Wraps a denoiser, counting calls (NFE, one per batched call) and their wall time in seconds."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        _sync(x.device)
        start = time.perf_counter()
        out = self.denoiser(x, sigma)
        _sync(x.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


@dataclass
class StepInfo:
    """Passed to callbacks after each step: wall time of the step, the part spent in the denoiser, its calls."""

    step: int
    sigma: float
    seconds: float
    network_seconds: float
    network_calls: int


@dataclass
class RunResult:
    """The reconstruction ``x`` ``(B, *image)``, the final state of the last chunk, per-step timings (``steps``
    lists, one entry per step and chunk, in order) and the sampler's further ``outputs`` (``Sampler.outputs``,
    concatenated over chunks along the batch)."""

    x: torch.Tensor
    state: State
    steps: list[StepInfo] = field(default_factory=list)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nfe(self) -> int:
        """Denoiser calls per chunk (each call handles a whole chunk)."""
        chunks = max(1, sum(1 for s in self.steps if s.step == 0))
        return sum(s.network_calls for s in self.steps) // chunks

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def network_seconds(self) -> float:
        return sum(s.network_seconds for s in self.steps)


Callback = Callable[[State, StepInfo], None]


def run(
    sampler: Sampler,
    problem: InverseProblem | None,
    denoiser: Denoiser,
    generator: torch.Generator,
    *,
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    max_batch: int | None = None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> RunResult:
    """Run ``sampler`` to the end and return the reconstruction.

    Args:
        sampler: any ``Sampler``; its ``requires_grad`` decides between ``torch.enable_grad`` and ``no_grad``.
        problem: the inverse problem, or None for the unconditional samplers (then ``shape`` is required).
        denoiser: ``D(x, sigma)``; wrapped in a ``TimedDenoiser`` to split network time from the rest.
        generator: the only source of randomness; its state is checkpointed with the sampler state.
        shape, dtype, device: the sample shape ``(B, *image)`` for unconditional runs.
        max_batch: process the ``B`` samples in chunks of at most this many denoiser samples (each chunk one
            batched call per denoiser evaluation); a sampler with ``samples_per_image = P`` particles gets
            ``max(1, max_batch // P)`` images per chunk, so one image's particles are never split. Results
            depend on the chunking only through the order of random draws.
        progress: show a tqdm bar.
        callbacks: called as ``cb(state, info)`` after every step.
        checkpoint_dir: where to save (``chunk_<k>/``) and from where to resume: an existing checkpoint there
            is loaded and the run continues from it, bit-identically on CPU.
        checkpoint_every: save every this many steps (0: never) and after the last step.
    """
    if problem is None and shape is None:
        raise ValueError("an unconditional run needs the sample shape (B, *image)")
    total = problem.batch if problem is not None else shape[0]
    if total < 1:
        raise ValueError("nothing to sample: empty batch")
    per_image = max(1, int(getattr(sampler, "samples_per_image", 1)))
    chunk = max(1, max_batch // per_image) if max_batch else total
    if getattr(sampler, "couples_batch", False) and chunk < total:
        raise ValueError(f"{type(sampler).__name__} couples the {total} samples of its batch (the slices of one "
                         f"volume); max_batch = {max_batch} would split them (bound its network batch instead)")
    outputs, infos, extras = [], [], []
    state = None
    for k, start in enumerate(range(0, total, chunk)):
        stop = min(total, start + chunk)
        sub = problem.select(start, stop) if problem is not None else None
        sub_shape = None if shape is None else (stop - start,) + tuple(shape[1:])
        folder = None if checkpoint_dir is None else Path(checkpoint_dir) / f"chunk_{k}"
        state, chunk_infos = _run_chunk(
            sampler, sub, denoiser, generator, sub_shape, dtype, device, progress, list(callbacks), folder,
            checkpoint_every,
        )
        outputs.append(sampler.result(state).detach())
        extras.append({k: v.detach() for k, v in sampler.outputs(state).items()})
        infos += chunk_infos
    assert state is not None
    merged = {k: torch.cat([e[k] for e in extras], 0) for k in extras[0]}
    return RunResult(torch.cat(outputs, 0), state, infos, merged)


def timed_step(
    sampler: Sampler, state: State, problem: InverseProblem | None, timed: TimedDenoiser,
    generator: torch.Generator,
) -> tuple[State, StepInfo]:
    """One ``sampler.step`` and its ``StepInfo`` (wall time, the network's share and calls)."""
    sigma = sampler.sigmas[state.step]
    calls, net = timed.calls, timed.seconds
    _sync(state.x.device)
    start = time.perf_counter()
    state = sampler.step(state, problem, timed, generator)
    _sync(state.x.device)
    info = StepInfo(state.step - 1, sigma, time.perf_counter() - start, timed.seconds - net, timed.calls - calls)
    return state, info


def _run_chunk(sampler, problem, denoiser, generator, shape, dtype, device, progress, callbacks, folder, every):
    from tqdm.auto import tqdm

    timed = TimedDenoiser(denoiser)
    meta = {"sampler": type(sampler).__name__, "num_steps": sampler.num_steps}
    grad_mode = torch.enable_grad if sampler.requires_grad else torch.no_grad
    with grad_mode():
        state = sampler.init(problem, timed, generator, shape, dtype, device)
        if folder is not None:
            state = load_checkpoint(folder, generator, state.x.device, meta) or state
        infos: list[StepInfo] = []
        bar = tqdm(total=sampler.num_steps, initial=state.step, disable=not progress, leave=False)
        while state.step < sampler.num_steps:
            state, info = timed_step(sampler, state, problem, timed, generator)
            infos.append(info)
            for cb in callbacks:
                cb(state, info)
            if folder is not None and every and (state.step % every == 0 or state.step == sampler.num_steps):
                save_checkpoint(folder, state, generator, meta)
            bar.update(1)
        bar.close()
    return state, infos
