"""A job's sampling as work items: ``plan_items`` splits it, ``execute_item`` runs one, the caller assembles.

A work item is a chunk of slices of one volume job (``run.batch_size`` slices, or the whole volume for a
sampler that couples its slices, ``dds_3d``). ``execute_item`` is pure: its result depends only on the prepared
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
    """Slices ``[start, stop)`` of one volume job, sampled as one batch with generator seed ``seed``."""

    chunk: int
    start: int
    stop: int
    seed: int

    @property
    def slices(self) -> range:
        return range(self.start, self.stop)

    def describe(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "slices": [self.start, self.stop], "seed": self.seed}


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
        return {**self.item.describe(), "reused": self.reused, **({} if self.reused else self.timing)}


def chunk_size(component: SamplerComponent, slices: int, batch_size: int) -> int:
    """Slices per sampler run: ``run.batch_size``, or every slice for a sampler that couples them (``dds_3d``)."""
    return slices if getattr(component.sampler, "couples_batch", False) else batch_size


def chunk_seed(seed: int, chunk: int) -> int:
    """The sampler seed of slice chunk ``chunk``: independent of how many chunks ran before (resume-safe)."""
    return int(np.random.SeedSequence([seed, 1, chunk]).generate_state(1)[0])


def plan_items(job: PreparedJob) -> list[WorkItem]:
    """The work items of ``job``: consecutive chunks of ``chunk_size`` slices, each with its ``chunk_seed``."""
    n = job.problem.num_slices
    b = chunk_size(job.sampler, n, job.spec.run.batch_size)
    return [WorkItem(k, s, min(s + b, n), chunk_seed(job.spec.run.seed, k)) for k, s in enumerate(range(0, n, b))]


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
    sl = slice(item.start, item.stop)
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
    extras = {k: (v * scale if k in UNCERTAINTY_MAPS else v).cpu() for k, v in extras.items()}
    return ItemResult(item, (x * scale).cpu(), extras, timing)

