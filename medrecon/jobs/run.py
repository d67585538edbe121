"""``run_job`` / ``run_jobs``: build volume jobs, sample their work items on a backend, write outputs and records.

Order of work (nothing is written before every volume's inputs have been validated):

1. ``prepare_job``: load and check the data, build the operator and measurements, the prior, the sampler and
   the baselines (all errors here are ``MedreconError`` s; no file is touched).
2. ``validate_volume``: the intensity scale by the prior's ``normalisation`` rule (``estimate_scale``: fixed for
   CT, a percentile of a few CG iterations on ``A^H A x = A^H y`` for MRI) and the noise level. The sampler and
   baselines see ``y / scale`` and ``sigma_y / scale``; results are multiplied back by ``scale``.
3. ``start_volume``: check the output folder, start or resume its ``.partial`` folder, and plan the work items
   (``medrecon.jobs.work``: chunks of ``run.batch_size`` slices, or the whole volume for ``dds_3d``).
4. The backend (``medrecon.jobs.backends``: this process, or Ray workers) executes the pending items; each
   finished item is saved to ``.partial`` at once (``save_item``).
5. ``assemble_volume``: stack, run the baselines, score, write the outputs atomically, then ``record.json``;
   remove ``.partial``. With several volumes each is written as soon as its last item returns.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from operators import cg

from .. import __version__
from ..errors import ConfigError, InputError
from ..files import ensure_writable_dir, write_json_atomic
from .acquisition import acquisition_summary
from .backends import Backend, LocalBackend, Task
from .compat import check_prior_serves
from .lock import OutputLock
from .noise import resolve_sigma_y
from .problem import Volume, VolumeProblem
from .registry import REGISTRY, Registry
from .resume import PartialRun
from .sampling import SamplerComponent, check_sampler_noise, check_sampler_sources
from .spec import JobSpec, naming_job_file
from .work import UNCERTAINTY_MAPS, ItemContext, ItemResult, WorkItem, chunk_seed, chunk_size, plan_items

__all__ = [
    "JobCache",
    "JobResult",
    "PreparedJob",
    "VolumeRun",
    "assemble_volume",
    "check_output_dir",
    "check_prior_matches",
    "chunk_seed",
    "chunk_size",
    "estimate_scale",
    "magnitude",
    "prepare_job",
    "run_job",
    "run_jobs",
    "save_item",
    "start_volume",
    "validate_volume",
]

SCALE_CG_ITERS = 5


@dataclass
class PreparedJob:
    """A job's built components (everything validated, nothing written)."""

    spec: JobSpec
    volume: Volume
    problem: VolumeProblem
    prior: Any
    sampler: SamplerComponent
    baselines: dict[str, Callable[..., torch.Tensor]]
    device: torch.device


@dataclass
class JobResult:
    """What ``run_job`` returns: reconstructions (scaled back; cropped magnitudes for MRI) and the record."""

    out: Path
    reconstruction: np.ndarray
    baselines: dict[str, np.ndarray]
    reference: np.ndarray | None
    metrics: dict[str, dict[str, float]]
    record: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # SMC: std, lower, upper (S, h, w), data units;
    # a joint sampler's further sources (dehazing: haze)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"run.device = {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f'run.device = {name!r}: CUDA is not available on this machine (use "cpu")')
    return device


def check_output_dir(path: Path) -> Path:
    """Raise ``InputError`` if ``path`` could not be created or written to; creates nothing."""
    if not str(path).strip() or "\x00" in str(path):
        raise InputError(repr(str(path)), "not a usable output folder name", field="out")
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(path, f"cannot create the output directory: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(path, f"output directory is not writable ({probe})")
    return path


def prepare_job(spec: JobSpec, registry: Registry = REGISTRY, device: str | None = None) -> PreparedJob:
    """Build and validate every component of ``spec`` without writing anything, on ``device`` (default
    ``run.device``; a Ray driver validates and assembles on the CPU while its workers use ``run.device``).

    A ``ConfigError`` names the job file (``spec.source``); a prior whose sidecar says another modality or
    complexity than the data's is refused before the operator is built.
    """
    with naming_job_file(spec.source):
        return _prepare(spec, registry, device)


def check_prior_matches(meta: dict[str, Any], volume: Volume, source: str) -> None:
    """Raise ``InputError`` (naming the prior's sidecar ``source`` and the field) when the prior's sidecar
    ``modality`` or ``complex`` does not match the data (a CT prior on k-space, a real prior on MRI...)."""
    modality = meta.get("modality")
    data = f"{volume.modality} data ({volume.path or 'simulated'})"
    if modality is not None and modality != volume.modality:
        raise InputError(
            source,
            f"the prior is for {modality} but the job reconstructs {data}; use a {volume.modality} prior",
            field="modality",
        )
    complex_ = meta.get("complex")
    wanted = volume.modality == "mri"
    if complex_ is not None and bool(complex_) != wanted:
        kind = "complex" if complex_ else "real"
        need = "complex" if wanted else "real"
        raise InputError(
            source,
            f"the prior is {kind}-valued but {data} needs a {need}-valued prior",
            field="complex",
        )


def _prior_source(spec: JobSpec, meta: dict[str, Any]) -> str:
    path = spec.prior.options.get("path")
    if isinstance(path, str):
        return path
    weights = meta.get("weights")
    if spec.prior.kind == "default" and isinstance(weights, str):
        from ..priors.checkpoint import DEFAULT_DIR

        return str(DEFAULT_DIR / Path(weights).with_suffix(".json").name)
    return f"prior.kind = {spec.prior.kind!r}"


def _prepare(spec: JobSpec, registry: Registry, device_name: str | None) -> PreparedJob:
    device = _device(spec.run.device if device_name is None else device_name)
    volume: Volume = registry.get("data", spec.data.kind).build(**spec.data.options)
    if "dicom" in spec.run.outputs and volume.modality != "ct":
        raise ConfigError('run.outputs: "dicom" writes CT image series only; use "hdf5" or "nifti" for MRI')
    prior = registry.get("prior", spec.prior.kind).build(volume, **spec.prior.options)
    meta = getattr(prior, "meta", None) or {}
    check_prior_matches(meta, volume, _prior_source(spec, meta))
    mask_generator = torch.Generator().manual_seed(spec.run.seed)
    problem: VolumeProblem = registry.get("operator", spec.operator.kind).build(
        volume, mask_generator, **spec.operator.options
    )
    if not bool(torch.isfinite(problem.y).all()):
        raise InputError(
            volume.path or spec.data.kind,
            "measurements contain NaN or Inf values",
            field="kspace" if volume.modality == "mri" else "image",
        )
    check_prior_serves(meta, problem.image_shape, str(volume.path or spec.data.kind), volume)
    if isinstance(prior, torch.nn.Module):
        prior = prior.to(device)
    from ..priors.meta import meta_of

    sampler = registry.get("sampler", spec.sampler.kind).build(meta_of(prior), **spec.sampler.options)
    check_sampler_sources(sampler, problem.info, spec.operator.kind)
    from .baselines import check_baseline_modality

    check_baseline_modality(list(spec.baselines), volume.modality, spec.operator.kind)
    start = (sampler.settings or {}).get("start", "noise")
    if start != "noise":
        check_baseline_modality([start], volume.modality, spec.operator.kind, key="sampler.start")
    baselines = {
        name: functools.partial(registry.get("baseline", name).build, **options)
        for name, options in spec.baselines.items()
    }
    return PreparedJob(spec, volume, problem, prior, sampler, baselines, device)


def prior_record(name: str, prior: Any) -> dict[str, Any]:
    """What the run record says about the prior: its name, weights checksum and training facts if known."""
    meta = getattr(prior, "meta", None) or {}
    keys = (
        "weights",
        "weights_sha256",
        "parameterization",
        "data_range",
        "image_size",
        "modality",
        "complex",
    )
    return {"kind": name, **{k: meta[k] for k in keys if k in meta}}


def magnitude(images: torch.Tensor, crop: tuple[int, int]) -> np.ndarray:
    """``|images|`` centre-cropped to ``crop``, float32 numpy ``(S, h, w)`` (real images keep their sign)."""
    h, w = crop
    H, W = images.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    cut = images[..., top : top + h, left : left + w]
    out = cut.abs() if cut.is_complex() else cut
    return out.detach().cpu().to(torch.float32).numpy()


def estimate_scale(
    problem: VolumeProblem, prior: Any, device: torch.device, source: str = "data"
) -> dict:
    """The intensity scale (data units per prior unit) by the prior's own ``normalisation`` rule.

    ``fixed``: the sidecar's scale (CT: attenuation per prior unit). ``percentile``: that percentile of
    ``|x_init|`` over every slice, inside the reconstruction crop, mapped to the rule's value, where ``x_init``
    is ``SCALE_CG_ITERS`` CG iterations on ``A^H A x = A^H y`` from zero (nearer the image's intensity than
    ``A^H y``, which undersampling darkens). Returns ``{"scale": ..., ...}`` for the run record.
    """
    from ..priors.meta import meta_of, normalisation

    rule = normalisation(meta_of(prior))
    if rule.rule == "fixed":
        return {"scale": rule.scale, "rule": rule.describe()}
    values = []
    n = problem.num_slices
    for start in range(0, n, 8):
        sl = slice(start, min(start + 8, n))
        op = problem.operator_for(sl).to(device)
        y = problem.y[sl].to(device)
        with torch.no_grad():
            x_init = cg(op.normal, op.adjoint(y), iters=SCALE_CG_ITERS)
        values.append(torch.from_numpy(magnitude(x_init, problem.crop)).flatten())
    level = float(np.percentile(torch.cat(values).numpy(), rule.percentile))
    if not np.isfinite(level) or level <= 0:
        raise InputError(source, "the measurements are all zero (no intensity scale)", field="kspace")
    return {
        "scale": level / rule.value,
        "rule": rule.describe(),
        "x_init_percentile": level,
        "x_init": f"{SCALE_CG_ITERS} CG iterations on A^H A x = A^H y",
    }


def _metrics(recon: np.ndarray, reference: np.ndarray | None, data_range: float | None) -> dict[str, float]:
    if reference is None:
        return {}
    from ..metrics import nmse, psnr, ssim

    return {
        "psnr": float(psnr(reference, recon, data_range)),
        "ssim": float(ssim(reference, recon, data_range)),
        "nmse": float(nmse(reference, recon)),
    }


def _ensemble_outputs(
    extras: list[dict[str, torch.Tensor]], crop: tuple[int, int]
) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """The ensembles' maps (cropped, data units) and, for the SMC ensembles, their ESS / resampling summary
    (independent chains: equal weights, nothing to summarise); nothing for samplers without further outputs."""
    if not extras or not all(UNCERTAINTY_MAPS[0] in e for e in extras):
        return {}, None
    merged = {k: torch.cat([e[k] for e in extras]) for k in extras[0]}
    maps = {k: magnitude(merged[k], crop) for k in UNCERTAINTY_MAPS}
    if "ess" not in merged:
        return maps, {"weights": "equal (independent chains)"}
    ess = merged["ess"].to(torch.float64)
    steps = ess.shape[1] - 1
    resamples = [int(v) for v in merged["resamples"]]
    collapsed = [k for k in range(ess.shape[0]) if float(merged["std"][k].max()) == 0.0]
    heavy = [k for k, r in enumerate(resamples) if r > steps / 2]
    summary = {
        "ess_final": [round(float(v), 4) for v in ess[:, -1]],
        "ess_min": [round(float(v), 4) for v in ess.min(1).values],
        "resamples": resamples,
        "degenerate_slices": sorted(set(collapsed) | set(heavy)),
    }
    if "weight_exponent" in merged:  # 1 everywhere: exact weights; below 1: tempered by the ESS floor
        exponent = merged["weight_exponent"].to(torch.float64)
        summary["weight_exponent_mean"] = [round(float(v), 4) for v in exponent.mean(1)]
        summary["exact_weights"] = bool((exponent == 1).all())
    if summary["degenerate_slices"]:
        summary["warning"] = (
            f"the ensemble degenerated on {len(summary['degenerate_slices'])} of {ess.shape[0]} slices (resampled "
            f"at more than half of the {steps} steps, or every particle identical at the end): the std and "
            "interval maps understate the uncertainty; use more particles or a larger sigma_y")
    return maps, summary


def _calibration(reference: np.ndarray | None, recon: np.ndarray, maps: dict[str, np.ndarray]) -> dict[str, Any]:
    """Coverage of the credible intervals (all pixels and the foreground) and the z-score summary."""
    if reference is None:
        return {}
    from ..metrics import foreground, interval_coverage, z_histogram, z_scores

    fg = foreground(reference)
    z = z_histogram(z_scores(reference, recon, maps["std"])[fg])
    return {
        "coverage": interval_coverage(reference, maps["lower"], maps["upper"]),
        "coverage_foreground": interval_coverage(reference, maps["lower"], maps["upper"], fg),
        "z_foreground": {"mean": z["mean"], "std": z["std"]},
    }


def source_commit() -> str:
    """The git commit of the installed source tree (short hash), or ``"unknown"`` outside a checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    return {
        "medrecon": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@dataclass
class VolumeRun:
    """One volume job between its validation and its outputs: where it writes, what every item shares, its work
    items and the results finished so far (reused from ``.partial`` on ``--resume``)."""

    spec: JobSpec
    out: Path
    partial: PartialRun
    resumed: bool
    resumed_from: dict[str, Any] | None
    scale_info: dict[str, Any]
    noise_info: dict[str, Any]
    context: ItemContext
    items: list[WorkItem]
    results: dict[int, ItemResult] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=lambda: {"kind": "local"})

    @property
    def pending(self) -> list[WorkItem]:
        return [item for item in self.items if item.chunk not in self.results]

    @property
    def done(self) -> bool:
        return not self.pending


@dataclass(frozen=True)
class VolumeChecks:
    """What validating a prepared volume job found: the intensity scale and noise level (record entries and
    ``sigma_y`` in data units), its work items, the images' shape and the device, all that starting and
    executing the volume need without its data (which may then be released)."""

    scale_info: dict[str, Any]
    noise_info: dict[str, Any]
    sigma_y: float
    items: list[WorkItem]
    image_shape: tuple[int, ...]
    device: str


def validate_volume(job: PreparedJob) -> VolumeChecks:
    """Scale, noise level and work items of a prepared job; refuses a sampler that needs noise on noiseless
    data. Nothing is written."""
    spec, problem = job.spec, job.problem
    if spec.run.scale is None:
        scale_info = estimate_scale(problem, job.prior, job.device, str(job.volume.path or spec.data.kind))
    else:
        scale_info = {"scale": spec.run.scale, "x_init": "fixed by run.scale"}
    sigma_y, noise_info = resolve_sigma_y(spec.run.sigma_y, job.volume, problem)
    check_sampler_noise(job.sampler, sigma_y)
    return VolumeChecks(scale_info, noise_info, sigma_y, plan_items(job), tuple(problem.image_shape),
                        str(job.device))


def start_volume(spec: JobSpec, checks: VolumeChecks, out: Path, resume: bool, progress: bool) -> VolumeRun:
    """Open ``out``'s ``.partial`` folder (kept on ``resume`` when it holds this job) and load the finished
    items."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    partial = PartialRun(out)
    resumed = partial.start(spec.hash, resume)
    items = checks.items
    resumed_from = partial.progress([item.slices for item in items], resumed) if resume else None
    every = spec.run.checkpoint_every
    context = ItemContext(
        scale=checks.scale_info["scale"],
        sigma_y=checks.sigma_y,
        device=checks.device,
        checkpoints={item.chunk: str(partial.checkpoint_path(item.chunk)) for item in items} if every else {},
        checkpoint_every=every,
        progress=progress,
    )
    run = VolumeRun(spec, out, partial, resumed, resumed_from, checks.scale_info, checks.noise_info, context,
                    items, times={"start": t_start, "cpu_start": cpu_start, "prepared": time.perf_counter()})
    for item in items:
        if resumed and partial.has_slices(item.slices):
            x = partial.load_slices(item.slices, checks.image_shape)
            run.results[item.chunk] = ItemResult(item, x, partial.load_extras(item.slices), {}, reused=True)
    return run


def save_item(run: VolumeRun, result: ItemResult) -> None:
    """Keep a finished item: its further outputs, then its slices, saved to ``.partial`` at once."""
    run.partial.save_extras(result.item.start, result.extras)  # before the slices: a saved slice has its maps
    run.partial.save_slices(result.item.start, result.x)
    run.results[result.item.chunk] = result


def _baseline_images(job: PreparedJob, items: list[WorkItem], scale: float) -> tuple[dict, dict]:
    """Every baseline, chunk by chunk like the sampler (a baseline that couples slices, ``couples_batch``, gets
    the whole volume), in data units, cropped."""
    problem = job.problem
    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    whole = [range(problem.num_slices)]
    for name, build in job.baselines.items():
        t0 = time.perf_counter()
        couples = getattr(getattr(build, "func", build), "couples_batch", False)
        parts = []
        for idx in whole if couples else [item.slices for item in items]:  # a baseline sees the kept slices
            sl = slice(idx.start, idx.stop)
            op = problem.operator_for(sl).to(job.device)
            with torch.no_grad():
                parts.append((build((problem.y[sl] / scale).to(job.device), op) * scale).cpu())
        images[name] = magnitude(torch.cat(parts), problem.crop)
        seconds[name] = time.perf_counter() - t0
    return images, seconds


def assemble_volume(job: PreparedJob, run: VolumeRun) -> JobResult:
    """Stack the items' slices, run the baselines, score against the reference, write the outputs and
    ``record.json`` atomically, and remove ``.partial``."""
    from .outputs import write_outputs

    spec, problem = job.spec, job.problem
    results = [run.results[item.chunk] for item in run.items]
    t_sampled = time.perf_counter()
    recon = magnitude(torch.cat([r.x for r in results]), problem.crop)
    extras = [r.extras for r in results]
    maps, ensemble = _ensemble_outputs(extras, problem.crop)
    for name in job.sampler.further_priors:  # a joint sampler's further sources (dehazing: the haze)
        maps[name] = magnitude(torch.cat([e[name] for e in extras]), problem.crop)
    baseline_images, baseline_seconds = _baseline_images(job, run.items, run.context.scale)

    reference = job.volume.reference
    ref = None if reference is None else reference.detach().cpu().to(torch.float32).numpy()
    data_range = job.volume.attrs.get("max")
    metrics = {}
    if ref is not None:
        metrics[spec.sampler.kind] = _metrics(recon, ref, data_range)
        for name, img in baseline_images.items():
            metrics[name] = _metrics(img, ref, data_range)
        if job.volume.modality == "ultrasound":
            from .ultrasound import ultrasound_metrics

            for name, img in {spec.sampler.kind: recon, **baseline_images}.items():
                metrics[name].update(ultrasound_metrics(img, ref, job.volume))

    chunk_records = [r.record() for r in results]
    record: dict[str, Any] = {
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "job_file": None if spec.source is None else str(spec.source),
        "versions": _versions(),
        "device": str(job.device),
        "torch_threads": torch.get_num_threads(),
        "seeds": {"run": spec.run.seed, "mask": spec.run.seed, "chunks": [c["seed"] for c in chunk_records]},
        "scale": run.scale_info,
        "noise": run.noise_info,
        "sampler": {"kind": spec.sampler.kind, **(job.sampler.settings or spec.sampler.options)},
        "problem": problem.info,
        "acquisition": acquisition_summary(problem.info),
        "inputs": {
            "data": {
                "path": None if job.volume.path is None else str(job.volume.path),
                "sha256": job.volume.sha256,
            },
            "prior": prior_record(spec.prior.kind, job.prior),
        },
        "chunks": chunk_records,
        "resumed": run.resumed,
        "resumed_from": run.resumed_from,
        "metrics": metrics,
        "timings": {
            "prepare_s": run.times["prepared"] - run.times["start"],
            "sampling_s": t_sampled - run.times["prepared"],
            "baselines_s": baseline_seconds,
        },
    }
    record["backend"] = run.backend
    if ensemble is not None:
        record["uncertainty"] = {"level": job.sampler.sampler.level, **ensemble, **_calibration(ref, recon, maps)}
    result = JobResult(run.out, recon, baseline_images, ref, metrics, record, maps=maps)
    result.files = write_outputs(result, job)
    record["timings"]["total_s"] = time.perf_counter() - run.times["start"]
    record["timings"]["process_cpu_s"] = time.process_time() - run.times["cpu_start"]
    record["outputs"] = [str(p.relative_to(run.out)) for p in result.files] + ["record.json"]
    write_json_atomic(run.out / "record.json", record)
    result.files.append(run.out / "record.json")
    run.partial.finish()
    return result


def run_job(
    spec: JobSpec,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any], None] | None = None,
    registry: Registry = REGISTRY,
    prepared: PreparedJob | None = None,
    on_resume: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
) -> JobResult:
    """Run ``spec`` and write its outputs to ``out`` (default ``spec.run.out``).

    Args:
        spec: a validated job (``load_spec``).
        out: output folder; created if needed.
        resume: continue an unfinished run of the same spec in ``out`` (bit-identical result on CPU).
        progress: show tqdm bars.
        callback: ``callback(chunk, state)`` after every sampler step (raise to stop the run); it runs where
            the item runs (in a worker process with the Ray backend).
        registry: where component names are looked up.
        prepared: components already built by ``prepare_job`` (skips building them again).
        on_resume: with ``resume``, called once with what the run continues from (``PartialRun.progress``,
            also recorded as ``resumed_from``) before any sampling.
        backend: where the work items run (default: ``LocalBackend``, in this process, in order).

    Returns:
        A ``JobResult`` with the arrays, metrics, record and written files.
    """
    target = Path(out if out is not None else spec.run.out)
    return run_jobs([(spec, target)], resume=resume, progress=progress, callback=callback, registry=registry,
                    prepared=[prepared] if prepared is not None else None, on_resume=on_resume,
                    backend=backend)[0]


def run_jobs(
    jobs: list[tuple[JobSpec, Path]],
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any], None] | None = None,
    registry: Registry = REGISTRY,
    prepared: list[PreparedJob] | None = None,
    on_resume: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
    on_finished: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run volume jobs ``[(spec, out), ...]`` through one backend: every volume is validated first (nothing is
    written before all are), then the items of every volume go to the backend together and each volume is
    assembled and written as soon as its last item returns (``on_finished(result)``), so a failure later on
    never undoes a finished volume. Arguments as ``run_job``; ``prepared``: one ``PreparedJob`` per entry.
    """
    from tqdm.auto import tqdm

    backend = backend if backend is not None else LocalBackend()
    outs = [check_output_dir(Path(out)) for _, out in jobs]
    for out in outs:
        OutputLock(out).check()  # another run on this folder: fail before any compute
    if len(set(map(str, (o.absolute() for o in outs)))) != len(outs):
        raise ConfigError("two volumes of the job write to the same output folder; give each its own")
    cache = JobCache(registry, backend.prepare_device)

    def job_for(k: int) -> PreparedJob:  # built once here, or one volume at a time from its spec
        return prepared[k] if prepared is not None else cache.get(jobs[k][0])

    t_start, cpu_start = time.perf_counter(), time.process_time()
    checks = []
    for k in range(len(jobs)):  # every volume validated before any is sampled or written
        checks.append(validate_volume(job_for(k)))
    results: list[JobResult | None] = [None] * len(jobs)
    with contextlib.ExitStack() as stack:
        runs: list[VolumeRun] = []
        for k, ((spec, _), out) in enumerate(zip(jobs, outs)):
            ensure_writable_dir(out)
            stack.enter_context(OutputLock(out))  # one job per output folder; released on success and failure
            run = start_volume(spec, checks[k], out, resume, progress and backend.shows_step_progress)
            if k == 0:
                run.times.update(start=t_start, cpu_start=cpu_start)
            run.backend = backend.describe()
            runs.append(run)
            if run.resumed_from is not None and on_resume is not None:
                on_resume(run.resumed_from)
        total = sum(len(item.slices) for r in runs for item in r.items)
        bar = tqdm(total=total, desc="slices", unit="slice", disable=not progress, leave=False)
        bar.update(sum(len(res.item.slices) for r in runs for res in r.results.values()))

        def finish(k: int) -> None:
            results[k] = assemble_volume(job_for(k), runs[k])
            if on_finished is not None:
                on_finished(results[k])

        for k, run in enumerate(runs):
            if run.done:
                finish(k)
        tasks = [Task(k, run.spec, item, run.context) for k, run in enumerate(runs) for item in run.pending]

        def on_result(task: Task, result: ItemResult) -> None:
            run = runs[task.volume]
            save_item(run, result)
            bar.update(len(result.item.slices))
            if run.done:
                finish(task.volume)

        backend.run(tasks, lambda task: job_for(task.volume), on_result, callback)
        bar.close()
    return [r for r in results if r is not None]


class JobCache:
    """The most recently prepared job, rebuilt from its spec when another is asked for (volumes one at a time in
    memory: a job's data, operator and prior)."""

    def __init__(self, registry: Registry = REGISTRY, device: str | None = None):
        self.registry, self.device, self.job = registry, device, None

    def get(self, spec: JobSpec) -> PreparedJob:
        if self.job is None or self.job.spec.hash != spec.hash or self.job.spec.source != spec.source:
            self.job = None  # release the previous volume before building the next
            self.job = prepare_job(spec, self.registry, self.device)
        return self.job
