"""The active-subsampling loop (ADS, reference section 8): particles run a sampler; at scheduled steps the planner
scores every unacquired candidate by the particles' disagreement about its measurement, acquires the best ones,
swaps the acquisition factor of the operator and continues; the final reconstruction uses all acquired data.

Particles are either a sampler's own (the SMC samplers, ``samples_per_image > 1``; new data reweights them through
``retarget``) or ``chains`` independent chains of any single-chain sampler (DDS, DPS, ...), run as one batch
(``samplers.IndependentChains``; a sampler that already averages chains is re-chained with ``chains``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..priors.base import Denoiser
from ..samplers.driver import StepInfo, TimedDenoiser, timed_step
from ..samplers.chains import IndependentChains
from ..samplers.problem import InverseProblem
from ..samplers.state import Sampler
from .candidates import Candidates
from .scores import auto_kernel_variance, disagreement, greedy_batch, kernel_scores

__all__ = ["Acquire", "Plan", "Schedule", "acquisition_schedule", "plan", "retrospective"]

Acquire = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``acquire(chosen, acquired) -> y``: measure the newly ``chosen`` candidates ``(B, k)`` and return the
measurements of every ``acquired`` one ``(B, L)`` (the data of ``candidates.operator(acquired)``)."""


@dataclass(frozen=True)
class Schedule:
    """Acquisition rounds: after sampler step ``steps[i]`` (completed steps), acquire ``counts[i]`` candidates."""

    steps: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def acquisition_schedule(
    num_steps: int, to_acquire: int, per_round: int = 1, start: int = 1, stop: int | None = None
) -> Schedule:
    """``to_acquire`` candidates in rounds of ``per_round``, spread evenly over sampler steps ``start..stop``
    (default: the first half of the ``num_steps`` steps, as ADS acquires in the early, uncertain part).

    Raises ``ValueError`` when the rounds do not fit in the sampler's steps."""
    stop = max(start, num_steps // 2) if stop is None else stop
    if to_acquire < 0 or per_round < 1:
        raise ValueError(f"need to_acquire >= 0 and per_round >= 1, got {to_acquire} and {per_round}")
    if not 1 <= start <= stop < num_steps:
        raise ValueError(f"acquisition steps {start}..{stop} lie outside the sampler's steps 1..{num_steps - 1}")
    rounds = math.ceil(to_acquire / per_round)
    if rounds > stop - start + 1:
        raise ValueError(f"{rounds} rounds of {per_round} do not fit in steps {start}..{stop}; raise per_round")
    if rounds == 0:
        return Schedule((), ())
    steps = torch.linspace(start, stop, rounds).round().long().tolist() if rounds > 1 else [start]
    counts = [per_round] * (rounds - 1) + [to_acquire - per_round * (rounds - 1)]
    return Schedule(tuple(int(s) for s in steps), tuple(counts))


def retrospective(candidates: Candidates, full: torch.Tensor) -> Acquire:
    """``acquire`` from fully sampled data ``(B, *full range)``: read the chosen lines or views from it."""
    return lambda chosen, acquired: candidates.measure(full, acquired.expand(full.shape[0], -1))


@dataclass
class Plan:
    """What ``plan`` returns.

    Attributes:
        acquired: ``(B, L)`` bool, every acquired candidate (the initial ones included).
        order: ``(B, n)`` the planned candidates in acquisition order.
        rounds: per round: ``step``, ``chosen`` (``(B, k)`` as lists), ``kernel_sigma`` per problem and the
            best and mean score.
        scores: per round, the scores ``(B, L)`` (``-inf`` where already acquired).
        x: ``(B, *image)`` the reconstruction from all acquired data (the mean over particles).
        particles: ``(R, B, *image)`` the final particles.
        steps: per-step timings (``StepInfo``).
    """

    acquired: torch.Tensor
    order: torch.Tensor
    rounds: list[dict] = field(default_factory=list)
    scores: list[torch.Tensor] = field(default_factory=list)
    x: torch.Tensor | None = None
    particles: torch.Tensor | None = None
    steps: list[StepInfo] = field(default_factory=list)

    @property
    def nfe(self) -> int:
        return sum(s.network_calls for s in self.steps)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


def plan(
    sampler: Sampler,
    candidates: Candidates,
    denoiser: Denoiser,
    generator: torch.Generator,
    *,
    initial: torch.Tensor,
    acquire: Acquire,
    schedule: Schedule,
    sigma_y: float = 0.0,
    chains: int = 8,
    kernel_sigma: float | None = None,
    sign: Literal["entropy", "ads"] = "entropy",
    diversity: float = 0.0,
    width: float | None = None,
    shared: bool = False,
    progress: bool = False,
) -> Plan:
    """Run ``sampler`` while acquiring candidates by ``schedule``.

    Args:
        sampler: any sampler; one with its own particles (``samples_per_image > 1``) uses them, any other runs
            ``chains`` chains per problem in one batch.
        candidates: the candidate set (``KSpaceLines``, ``KSpacePoints``, ``ProjectionViews``).
        denoiser: the prior ``D(x, sigma)``.
        generator: the only source of randomness (same seed, same plan).
        initial: ``(L,)`` or ``(B, L)`` bool, what is acquired before planning (the centre lines); never dropped.
        acquire: measures chosen candidates (``retrospective`` for fully sampled data, or a scanner callback).
        schedule: when and how many (``acquisition_schedule``); the budget is ``initial`` plus its total.
        sigma_y: measurement noise std per real component, in the units of ``y``.
        chains: particles per problem for single-chain samplers.
        kernel_sigma: the kernel width in measurement units (default: ``auto_kernel_variance`` every round).
        sign: ``entropy`` (the Gaussian-mixture entropy) or ``ads`` (the released ADS code's kernel).
        diversity, width: the greedy batch's penalty on neighbours of a round's earlier picks (``greedy_batch``;
            ``width`` in units of ``candidates.positions``, default the spacing of a uniform mask of the budget,
            ``L / budget``).
        shared: one plan for all ``B`` problems (a population mask): the scores are averaged over the problems.
        progress: show a tqdm bar.
    """
    from tqdm.auto import tqdm

    if isinstance(sampler, IndependentChains):  # the planner runs its own chains of the underlying sampler
        sampler = sampler.base
    chained = int(getattr(sampler, "samples_per_image", 1)) == 1
    reps = int(chains) if chained else int(sampler.samples_per_image)
    if reps < 2:
        raise ValueError(f"planning needs at least 2 particles per problem, got {reps}")
    if chained:
        sampler = IndependentChains(sampler, reps)
    rounds_at = dict(zip(schedule.steps, schedule.counts))
    if any(not 1 <= s < sampler.num_steps for s in rounds_at):
        raise ValueError(f"acquisition steps {sorted(rounds_at)} lie outside the sampler's steps "
                         f"1..{sampler.num_steps - 1}")
    acquired = candidates.check(initial).clone()
    y0 = acquire(torch.zeros(acquired.shape[0], 0, dtype=torch.long), acquired)
    b = y0.shape[0]
    acquired = acquired.expand(b, candidates.count).clone()
    free = int((~acquired[0]).sum())
    if schedule.total > free:
        raise ValueError(f"the schedule acquires {schedule.total} candidates, only {free} are not acquired")
    if width is None:
        width = candidates.count / max(1, int(acquired[0].sum()) + schedule.total)

    def problem_of(acq: torch.Tensor, y: torch.Tensor) -> InverseProblem:
        return InverseProblem(candidates.operator(acq), y, sigma_y)

    def particles_of(x: torch.Tensor) -> torch.Tensor:  # chains lie copy-major along the batch
        return x.reshape(reps, b, *x.shape[1:]) if chained else x

    timed = TimedDenoiser(denoiser)
    result = Plan(acquired, torch.zeros(b, 0, dtype=torch.long))
    grad_mode = torch.enable_grad if sampler.requires_grad else torch.no_grad
    problem = problem_of(acquired, y0)
    with grad_mode():
        state = sampler.init(problem, timed, generator)
        bar = tqdm(total=sampler.num_steps, disable=not progress, leave=False, desc="planning")
        while state.step < sampler.num_steps:
            if state.step in rounds_at:
                problem, state = _acquire_round(
                    result, state, sampler, candidates, timed, particles_of(state.x0.detach()),
                    rounds_at[state.step], acquire, problem_of, sigma_y, kernel_sigma, sign, diversity, width,
                    shared,
                )
            state, info = timed_step(sampler, state, problem, timed, generator)
            result.steps.append(info)
            bar.update(1)
        bar.close()
    result.particles = particles_of(state.x.detach())
    result.x = sampler.result(state).detach()
    return result


def _acquire_round(result, state, sampler, candidates, timed, particles, k, acquire, problem_of, sigma_y,
                   kernel_sigma, sign, diversity, width, shared):
    """Score, choose ``k`` candidates per problem, measure them and rebuild the problem (and reweight particles
    that carry weights)."""
    predictions = candidates.predict(particles)
    d = disagreement(predictions, candidates.dim)  # (B, L, P, P)
    acquired = result.acquired
    if kernel_sigma is None:
        s2 = auto_kernel_variance(d, acquired, sigma_y**2)
    else:
        s2 = torch.full((d.shape[0],), float(kernel_sigma) ** 2, dtype=d.dtype)
    scores = kernel_scores(d, s2, sign)
    if shared:
        scores = scores.mean(0, keepdim=True).expand_as(scores)
    picks = greedy_batch(scores[:1] if shared else scores, k, acquired[:1] if shared else acquired,
                         diversity, width, candidates.positions)
    picks = picks.expand(acquired.shape[0], k) if shared else picks
    shown = scores.masked_fill(acquired, -math.inf).to(torch.float32)
    acquired[torch.arange(acquired.shape[0])[:, None], picks] = True
    y = acquire(picks, acquired)
    problem = problem_of(acquired, y)
    result.order = torch.cat([result.order, picks], 1)
    result.scores.append(shown)
    free = shown[torch.isfinite(shown)]
    result.rounds.append({
        "step": state.step,
        "chosen": picks.tolist(),
        "kernel_sigma": s2.sqrt().tolist(),
        "score_max": float(free.max()) if free.numel() else float("nan"),
        "score_mean": float(free.mean()) if free.numel() else float("nan"),
    })
    retarget = getattr(sampler, "retarget", None)
    if retarget is not None:
        state = retarget(state, problem, timed)
    return problem, state
