"""``plan_job``: plan a k-space line mask (MRI), a set of views (CT) or of scan lines (ultrasound) for a job,
retrospectively from its fully sampled data, and write the mask with its provenance, a report figure and the
record.

Order of work (nothing is written before every input has been checked):

1. ``prepare_job`` builds the data, the operator (its own mask or views are the fixed comparison), the prior
   and the sampler; ``setup_plan`` checks the ``[plan]`` table against them (budget, centre lines, schedule)
   and builds the candidates, before any compute.
2. The intensity scale and ``sigma_y`` as ``medrecon run`` finds them.
3. ``medrecon.active.plan`` per chunk of ``run.batch_size`` slices (``adaptive``), or once over every slice with
   shared scores (``population``).
4. With ``plan.compare``, the job's sampler reconstructs every slice with the planned and with the fixed mask.
5. ``mask.npy`` (bool ``(S, L)`` per slice or ``(1, L)`` shared), ``mask.json`` (provenance), ``report.png``
   (with ``png`` in ``run.outputs``) and ``record.json``, each written atomically.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import defaults as D
from ..errors import ConfigError, InputError
from ..files import atomic_path, ensure_writable_dir, write_json_atomic
from .lock import OutputLock
from .noise import resolve_sigma_y
from .run import (
    PreparedJob,
    _metrics,
    _versions,
    check_output_dir,
    chunk_seed,
    estimate_scale,
    magnitude,
    prepare_job,
    prior_record,
    source_commit,
)
from .sampling import check_sampler_noise, sample_chunk
from .spec import JobSpec, naming_job_file

__all__ = ["PlanJobResult", "PlanSetup", "plan_job", "setup_plan"]


@dataclass
class PlanSetup:
    """A checked plan: candidates of every slice, what is kept from the start, the budget and the schedule."""

    kind: str  # "lines" or "views"
    candidates_for: Any  # slice -> Candidates
    full: torch.Tensor  # fully sampled measurements (S, *full range), data units
    initial: torch.Tensor  # (L,) bool
    budget: int
    schedule: Any
    positions: list[float]
    fixed: np.ndarray  # (L,) bool: the operator's own mask or views, for comparison
    measure_fixed: Any  # slice -> (operator, y) of the fixed acquisition, data units


@dataclass
class PlanJobResult:
    out: Path
    mask: np.ndarray
    record: dict[str, Any]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def setup_plan(spec: JobSpec, job: PreparedJob) -> PlanSetup:
    """Check ``spec.plan`` against the job and build its candidates; ``ConfigError``/``InputError`` before any
    compute."""
    from ..active import acquisition_schedule

    opts = spec.plan
    setups = {"mri": _mri_setup, "ct": _ct_setup, "ultrasound": _ultrasound_setup}
    setup = setups[job.volume.modality](spec, job)
    to_acquire = setup.budget - int(setup.initial.sum())
    steps = job.sampler.num_steps
    stop = opts.stop if opts.stop is not None else max(opts.start, int(D.ACTIVE.stop_fraction * steps))
    try:
        setup.schedule = acquisition_schedule(steps, to_acquire, opts.per_round, opts.start, stop)
    except ValueError as err:
        raise ConfigError(f"plan: {err} (plan.start = {opts.start}, plan.stop = {stop}, "
                          f"sampler.steps = {steps})") from None
    return setup


def _mri_setup(spec: JobSpec, job: PreparedJob) -> PlanSetup:
    from operators.masks import center_mask

    from ..active import KSpaceLines

    opts, volume, problem = spec.plan, job.volume, job.problem
    path = volume.path or "data"
    if volume.mask is not None:
        raise InputError(path, "plan-mask needs fully sampled k-space; this file stores an undersampling mask",
                         field="mask")
    if spec.operator.options.get("mask") == "planned":
        raise ConfigError('operator.mask = "planned": plan-mask compares against a fixed mask; use another mask')
    assert volume.kspace is not None
    w = int(volume.kspace.shape[-1])
    centre = opts.center_lines if opts.center_lines is not None else round(w * spec.operator.options["center_fraction"])
    fixed = problem.mask.reshape(-1).cpu().numpy().astype(bool)
    budget = opts.budget if opts.budget is not None else int(fixed.sum())  # the fixed mask's own budget
    if not 1 <= centre <= w:
        raise ConfigError(f"plan.center_lines = {centre}: need 1 to {w} (the k-space has {w} lines)")
    if budget < centre:
        raise ConfigError(f"plan.budget = {budget}: below the {centre} centre lines already acquired")
    if budget > w:
        raise ConfigError(f"plan.budget = {budget}: above the {w} candidate lines")

    def fixed_for(sl: slice):
        return problem.operator_for(sl), problem.y[sl]

    from operators.mri import crop_readout

    full = crop_readout(volume.kspace, problem.image_shape[0])  # the operator's rows (operator.readout_crop)
    return PlanSetup("lines", lambda sl: KSpaceLines(problem.operator_for(sl)), full,
                     center_mask(w, centre / w), budget, None, list(range(w)), fixed, fixed_for)


def _ct_setup(spec: JobSpec, job: PreparedJob) -> PlanSetup:
    from operators import SelectRows, ct, ct_geometry

    from ..active import ProjectionViews

    opts, volume, problem = spec.plan, job.volume, job.problem
    op_opts = spec.operator.options
    if spec.operator.kind not in ("parallel_beam_ct", "fan_beam_ct"):
        raise ConfigError(f"operator.kind = {spec.operator.kind!r}: plan-mask plans the views of simulated "
                          'sinograms; use "parallel_beam_ct" or "fan_beam_ct"')
    if op_opts.get("views_file") is not None:
        raise ConfigError("operator.views_file: plan-mask compares against uniformly spaced views; unset it")
    n = opts.candidate_views
    budget = opts.budget if opts.budget is not None else int(op_opts["views"])
    if not 1 <= budget <= n:
        raise ConfigError(f"plan.budget = {budget}: need 1 to plan.candidate_views = {n} views")
    angles = ct_geometry.sparse_view_angles(n, op_opts["arc_deg"])
    shape = tuple(volume.image.shape[-2:])
    if spec.operator.kind == "fan_beam_ct":
        projector = ct.fan_beam(shape, angles, op_opts["source_distance"], op_opts["detector_distance"])
    else:
        projector = ct.parallel_beam(shape, angles)
    fixed_angles = ct_geometry.sparse_view_angles(int(op_opts["views"]), op_opts["arc_deg"])
    near = [int(np.argmin(np.abs(np.asarray(angles) - a))) for a in fixed_angles]
    fixed = np.zeros(n, dtype=bool)
    fixed[near] = True
    with torch.no_grad():
        full = projector(volume.image)
    noise_std = float(problem.info.get("noise_std", 0.0))
    if noise_std > 0:  # the same noise level as the job's own sinograms
        g = torch.Generator().manual_seed(spec.run.seed)
        full = full + noise_std * torch.randn(full.shape, generator=g, dtype=full.dtype)
    initial = torch.zeros(n, dtype=torch.bool)
    initial[0] = True

    def fixed_for(sl: slice):
        select = SelectRows(torch.as_tensor(near), n)
        return select @ projector, select(full[sl])

    return PlanSetup("views", lambda sl: ProjectionViews(projector, torch.tensor(angles)), full, initial, budget,
                     None, list(angles), fixed, fixed_for)


def _ultrasound_setup(spec: JobSpec, job: PreparedJob) -> PlanSetup:
    from operators.masks import center_mask

    from ..active.ultrasound import ScanLineCandidates

    opts, volume, problem = spec.plan, job.volume, job.problem
    if spec.operator.kind != "ultrasound_scanlines":
        raise ConfigError(f"operator.kind = {spec.operator.kind!r}: plan-mask plans ultrasound scan lines; use "
                          '"ultrasound_scanlines"')
    if spec.operator.options.get("mask_file") is not None:
        raise ConfigError("operator.mask_file: plan-mask compares against a fixed line mask; unset it")
    total = int(problem.info["lines_total"])
    fixed = problem.mask.reshape(-1).cpu().numpy().astype(bool)
    budget = opts.budget if opts.budget is not None else int(fixed.sum())
    centre = opts.center_lines if opts.center_lines is not None else 1
    if not 1 <= centre <= total:
        raise ConfigError(f"plan.center_lines = {centre}: need 1 to {total} (the frames have {total} lines)")
    if not centre <= budget <= total:
        raise ConfigError(f"plan.budget = {budget}: need {centre} (the centre lines) to the {total} scan lines")
    full = volume.image
    noise_std = float(problem.info.get("noise_std", 0.0))
    if noise_std > 0:  # the same noise level as the job's own lines
        g = torch.Generator().manual_seed(spec.run.seed)
        full = full + noise_std * torch.randn(full.shape, generator=g, dtype=full.dtype)
    candidates = ScanLineCandidates(total)

    def fixed_for(sl: slice):
        return problem.operator_for(sl), problem.y[sl]

    return PlanSetup("lines", lambda sl: candidates, full, center_mask(total, centre / total), budget, None,
                     list(range(total)), fixed, fixed_for)


def plan_job(spec: JobSpec, out: str | Path | None = None, progress: bool = True,
             prepared: PreparedJob | None = None) -> PlanJobResult:
    """Plan ``spec``'s acquisition (``spec.plan``) and write it to ``out`` (default ``spec.run.out``)."""
    from ..active import plan, retrospective

    t_start = time.perf_counter()
    out_dir = check_output_dir(Path(out if out is not None else spec.run.out))
    OutputLock(out_dir).check()
    job = prepared if prepared is not None else prepare_job(spec)
    with naming_job_file(spec.source):
        setup = setup_plan(spec, job)
    opts, run, problem = spec.plan, spec.run, job.problem
    scale_info = (estimate_scale(problem, job.prior, job.device, str(job.volume.path or spec.data.kind))
                  if run.scale is None else {"scale": run.scale, "x_init": "fixed by run.scale"})
    scale = scale_info["scale"]
    sigma_y, noise_info = resolve_sigma_y(run.sigma_y, job.volume, problem)
    check_sampler_noise(job.sampler, sigma_y)
    ensure_writable_dir(out_dir)
    n = problem.num_slices
    shared = opts.mode == "population"
    chunks = [range(0, n)] if shared else [range(s, min(s + run.batch_size, n)) for s in range(0, n, run.batch_size)]
    with OutputLock(out_dir):
        t_prepared = time.perf_counter()
        acquired, orders, rounds, nfe, seconds = [], [], [], 0, 0.0
        planned_images, fixed_images = [], []
        for k, idx in enumerate(chunks):
            sl = slice(idx.start, idx.stop)
            cands = setup.candidates_for(sl)
            full_data = (setup.full[sl] / scale).to(job.device)
            generator = torch.Generator(device=job.device).manual_seed(chunk_seed(run.seed, k))
            result = plan(job.sampler.sampler, cands, job.prior, generator, initial=setup.initial.to(job.device),
                          acquire=retrospective(cands, full_data), schedule=setup.schedule,
                          sigma_y=sigma_y / scale, chains=opts.chains, kernel_sigma=opts.kernel_sigma or None,
                          sign=opts.sign, diversity=opts.diversity, width=opts.width or None, shared=shared,
                          progress=progress)
            acquired.append(result.acquired.cpu())
            orders.append(result.order.cpu())
            rounds.append(result.rounds)
            nfe += result.nfe
            seconds += result.seconds
            if opts.compare:
                op = cands.operator(result.acquired)
                y = cands.measure(full_data, result.acquired)
                g = torch.Generator(device=job.device).manual_seed(chunk_seed(run.seed, k))
                x, _, _ = sample_chunk(job.sampler, job.prior, op, y, sigma_y / scale, g, None, 0, progress, None)
                planned_images.append((x * scale).cpu())
                fop, fy = setup.measure_fixed(sl)
                g = torch.Generator(device=job.device).manual_seed(chunk_seed(run.seed, k))
                x, _, _ = sample_chunk(job.sampler, job.prior, fop.to(job.device), (fy / scale).to(job.device),
                                       sigma_y / scale, g, None, 0, progress, None)
                fixed_images.append((x * scale).cpu())
        t_planned = time.perf_counter()
        mask = torch.cat(acquired)[:1] if shared else torch.cat(acquired)
        mask_np = mask.numpy().astype(bool)
        metrics, recon = {}, {}
        ref = None if job.volume.reference is None else job.volume.reference.cpu().to(torch.float32).numpy()
        if opts.compare:
            recon = {"planned": magnitude(torch.cat(planned_images), problem.crop),
                     "fixed": magnitude(torch.cat(fixed_images), problem.crop)}
            if ref is not None:
                data_range = job.volume.attrs.get("max")
                metrics = {name: _metrics(img, ref, data_range) for name, img in recon.items()}
        provenance = {
            "candidates": setup.kind,
            "mode": opts.mode,
            "shape": list(mask_np.shape),
            "budget": setup.budget,
            "fixed_budget": int(setup.fixed.sum()),
            "kept_from_start": np.flatnonzero(setup.initial.numpy()).tolist(),
            "order": torch.cat(orders).tolist() if not shared else orders[0][0].tolist(),
            "positions": setup.positions,
            "schedule": {"steps": list(setup.schedule.steps), "counts": list(setup.schedule.counts)},
            "seed": run.seed,
            "chains": opts.chains if int(getattr(job.sampler.sampler, "samples_per_image", 1)) == 1
            else int(job.sampler.sampler.samples_per_image),
            "kernel": {"sign": opts.sign, "sigma": opts.kernel_sigma or "auto"},
            "diversity": opts.diversity,
            "width": opts.width or "auto",
            "sampler": {"kind": spec.sampler.kind, **(job.sampler.settings or spec.sampler.options)},
            "prior": prior_record(spec.prior.kind, job.prior),
            "data": {"path": None if job.volume.path is None else str(job.volume.path),
                     "sha256": job.volume.sha256, "slices": n},
            "job_file": None if spec.source is None else str(spec.source),
            "spec_hash": spec.hash,
            "commit": source_commit(),
            "versions": _versions(),
        }
        record = {
            "spec": spec.to_dict(),
            "plan": provenance,
            "scale": scale_info,
            "noise": noise_info,
            "metrics": metrics,
            "network_calls": nfe,
            "rounds": [r for chunk in rounds for r in chunk],
            "timings": {"prepare_s": t_prepared - t_start, "planning_s": seconds,
                        "planning_and_comparison_s": t_planned - t_prepared},
        }
        files = _write(out_dir, mask_np, provenance, record, setup, recon, ref, rounds,
                       "png" in run.outputs)
        record["timings"]["total_s"] = time.perf_counter() - t_start
        record["outputs"] = [p.name for p in files] + ["record.json"]
        write_json_atomic(out_dir / "record.json", record)
        files.append(out_dir / "record.json")
    return PlanJobResult(out_dir, mask_np, record, metrics, files)


def _write(out_dir: Path, mask: np.ndarray, provenance: dict, record: dict, setup: PlanSetup,
           recon: dict[str, np.ndarray], ref: np.ndarray | None, rounds: list, png: bool) -> list[Path]:
    files = []
    with atomic_path(out_dir / "mask.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, mask, allow_pickle=False)
    files.append(out_dir / "mask.npy")
    write_json_atomic(out_dir / "mask.json", provenance)
    files.append(out_dir / "mask.json")
    if png:
        from .plan_figure import save_plan_figure

        with atomic_path(out_dir / "report.png", suffix=".png") as tmp:
            save_plan_figure(tmp, mask, setup.fixed, setup.kind, rounds, recon, ref, record.get("metrics", {}))
        files.append(out_dir / "report.png")
    return files
