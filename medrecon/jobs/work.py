"""A job's sampling as work items: ``plan_items`` splits it, ``execute_item`` runs one, the caller assembles.

A work item is a chunk of slices of one volume job: ``run.batch_size`` slices, or for a sampler that couples its
slices (``dds_3d``) the whole volume, or with ``run.slab_slices`` slabs of that many slices sampled with
``run.slab_overlap`` neighbouring slices on each side (coupled within the slab, the overlap discarded), so one
large volume spreads over several workers. ``execute_item`` is pure: its result depends only on the prepared
job, the item (whose seed derives from the run seed and the chunk number, never from the order items run in)
and the ``ItemContext`` (scale, noise level, device), so a backend may run items in any order, in other
processes or on other machines (``medrecon.jobs.backends``), and give the local loop's result bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .sampling import SamplerComponent, sample_chunk

if TYPE_CHECKING:
    from .run import PreparedJob

__all__ = ["ItemContext", "ItemResult", "WorkItem", "chunk_seed", "chunk_size", "execute_item", "plan_items"]

UNCERTAINTY_MAPS = ("std", "lower", "upper")


@dataclass(frozen=True)
class WorkItem:
    """Slices ``[start, stop)`` of one volume job, sampled as one batch with generator seed ``seed``; it
    contributes slices ``[keep_start, keep_stop)`` (a slab's own slices without its overlap; by default all)."""

    chunk: int
    start: int
    stop: int
    seed: int
    keep_start: int | None = None
    keep_stop: int | None = None

    @property
    def sampled(self) -> range:
        """The slices sampled together."""
        return range(self.start, self.stop)

    @property
    def slices(self) -> range:
        """The slices this item contributes to the volume."""
        return range(self.start if self.keep_start is None else self.keep_start,
                     self.stop if self.keep_stop is None else self.keep_stop)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chunk": self.chunk, "slices": [self.slices.start, self.slices.stop],
                               "seed": self.seed}
        if self.sampled != self.slices:
            out["sampled"] = [self.start, self.stop]
        return out


@dataclass(frozen=True)
class ItemContext:
    """What every item of one run shares besides the job: the intensity ``scale`` (data units per prior unit),
    ``sigma_y`` in data units, the torch ``device`` name, and the sampler checkpoint folder of each chunk
    (``checkpoints[chunk]``; empty: no checkpoints) written every ``checkpoint_every`` steps."""

    scale: float
    sigma_y: float
    device: str = "cpu"
    checkpoints: dict[int, str] = field(default_factory=dict)
    checkpoint_every: int = 0
    progress: bool = False


@dataclass
class ItemResult:
    """One finished item: ``x`` ``(n, H, W)`` in data units on the CPU, the sampler's further outputs
    (uncertainty maps in data units, ESS traces, further sources) and the timings."""

    item: WorkItem
    x: torch.Tensor
    extras: dict[str, torch.Tensor]
    timing: dict[str, Any]
    reused: bool = False

    def record(self) -> dict[str, Any]:
        return {**self.item.describe(), "reused": self.reused, **self.timing}


def chunk_size(component: SamplerComponent, slices: int, batch_size: int, slab_slices: int = 0) -> int:
    """Slices per sampler run: ``run.batch_size``, or for a sampler that couples them (``dds_3d``) every slice,
    or ``slab_slices`` when set (without the overlap)."""
    if not getattr(component.sampler, "couples_batch", False):
        return batch_size
    return min(slab_slices, slices) if slab_slices else slices


def chunk_seed(seed: int, chunk: int) -> int:
    """The sampler seed of slice chunk ``chunk``: independent of how many chunks ran before (resume-safe)."""
    return int(np.random.SeedSequence([seed, 1, chunk]).generate_state(1)[0])


def plan_items(job: PreparedJob) -> list[WorkItem]:
    """The work items of ``job``: consecutive chunks of ``chunk_size`` slices, each with its ``chunk_seed``; slabs
    of a coupling sampler are widened by ``run.slab_overlap`` slices on each side (inside the volume)."""
    run, n = job.spec.run, job.problem.num_slices
    b = chunk_size(job.sampler, n, run.batch_size, run.slab_slices)
    overlap = run.slab_overlap if getattr(job.sampler.sampler, "couples_batch", False) and b < n else 0
    items = []
    for k, s in enumerate(range(0, n, b)):
        stop = min(s + b, n)
        lo, hi = max(0, s - overlap), min(n, stop + overlap)
        keep = (s, stop) if (lo, hi) != (s, stop) else (None, None)
        items.append(WorkItem(k, lo, hi, chunk_seed(run.seed, k), *keep))
    return items


def execute_item(
    job: PreparedJob,
    item: WorkItem,
    context: ItemContext,
    callback: Callable[[int, Any], None] | None = None,
) -> ItemResult:
    """Sample ``item``'s slices of ``job`` to the end; ``callback(chunk, state)`` after every sampler step.

    The prior is moved to ``context.device`` when it is elsewhere; a checkpoint in ``context.checkpoints`` for
    this chunk is resumed (state and generator), so a retried item continues where the last attempt stopped.
    """
    device = torch.device(context.device)
    prior = job.prior
    if isinstance(prior, torch.nn.Module):
        prior = prior.to(device)
    problem, scale = job.problem, context.scale
    sl = slice(item.start, item.stop)  # the sampled slices; the kept ones are cut out below
    op = problem.operator_for(sl).to(device)
    y = (problem.y[sl] / scale).to(device)
    generator = torch.Generator(device=device).manual_seed(item.seed)
    checkpoint = context.checkpoints.get(item.chunk)
    x, timing, extras = sample_chunk(
        job.sampler,
        prior,
        op,
        y,
        context.sigma_y / scale,
        generator,
        checkpoint=None if checkpoint is None else Path(checkpoint),
        checkpoint_every=context.checkpoint_every,
        progress=context.progress,
        callback=None if callback is None else (lambda state: callback(item.chunk, state)),
    )
    keep = slice(item.slices.start - item.start, item.slices.stop - item.start)
    extras = {k: (v * scale if k in UNCERTAINTY_MAPS else v)[keep].cpu() for k, v in extras.items()}
    return ItemResult(item, (x * scale)[keep].cpu(), extras, timing)

