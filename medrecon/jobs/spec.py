"""Job specifications: typed dataclasses from TOML (or YAML) plus ``--set section.key=value`` overrides.

A job file has five tables::

    [data]      kind = "fastmri", path = "...", ...     # what to reconstruct
    [operator]  kind = "multicoil_mri", ...             # the forward model (and the mask / views)
    [prior]     kind = "default"                        # the diffusion prior
    [sampler]   kind = "dds", steps = 50, ...           # the posterior sampler
    [run]       seed = 0, batch_size = 4, ...           # how to run and what to write (``RunOptions``)
    [baseline.l1_wavelet]  lamda = 0.005                # optional: options of a baseline in run.baselines

The first four name a registry component (``medrecon list`` shows them) whose keyword-only parameters are the
allowed keys; ``[run]`` is ``RunOptions`` below. Relative paths in ``[data]``, ``[prior]``, ``operator.mask_file``/``views_file`` and ``sampler.haze_prior`` are
resolved against the job file's folder (against the working directory when given with ``--set``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import defaults as D
from ..errors import ConfigError, InputError
from .registry import REGISTRY, Registry, check_value, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "OUTPUT_FORMATS",
    "ComponentSpec",
    "JobSpec",
    "PlanOptions",
    "RunOptions",
    "apply_overrides",
    "load_spec",
    "load_volume_jobs",
    "naming_job_file",
    "parse_override",
    "parse_spec",
    "volume_name",
]

COMPONENT_SECTIONS = ("data", "operator", "prior", "sampler")
OUTPUT_FORMATS = ("hdf5", "nifti", "dicom", "png")
PATH_OPTIONS = {"data": ("path",), "prior": ("path",), "operator": ("mask_file", "views_file"),
                "sampler": ("haze_prior",)}  # resolved against the job file


@dataclass(frozen=True)
class ComponentSpec:
    """One registry component: its ``kind`` and its validated options (defaults filled in)."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOptions:
    """The ``[run]`` table.

    Attributes:
        seed: seeds every generator: the mask, and one sampler generator per chunk of slices (``chunk_seed``).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        batch_size: slices reconstructed together (one sampler run per chunk).
        slab_slices: for a sampler that couples slices (``dds_3d``): 0 reconstructs the whole volume as one work
            item; ``N`` splits it into slabs of ``N`` slices (separate items: several workers, bounded memory),
            each sampled with ``slab_overlap`` neighbouring slices on either side whose results are discarded,
            so coupling reaches across slab boundaries.
        slab_overlap: slices added on each side of a slab (only with ``slab_slices``).
        sigma_y: measurement noise std per real component, in the measurements' units (k-space or sinogram);
            0 for noiseless data; ``"auto"``: the simulated level when the data or operator simulated it,
            else estimated from multi-coil k-space (``medrecon.jobs.noise``). The samplers see
            ``sigma_y / scale``.
        scale: data units per prior unit; ``None`` applies the prior's ``normalisation`` rule (a fixed scale for
            the shipped CT prior, a percentile of a CG image for the MRI prior; ``estimate_scale``).
        checkpoint_every: sampler steps between state checkpoints (0: never); used by ``--resume``.
        baselines: classical reconstructions to run beside the sampler (``medrecon list`` names them).
        outputs: files to write: ``hdf5`` (fastMRI-style ``reconstruction``), ``nifti``, ``dicom``, ``png``.
        out: output folder (relative to the working directory; ``--out`` overrides it).
    """

    seed: int = 0
    device: str = "cpu"
    batch_size: int = 4
    slab_slices: int = 0
    slab_overlap: int = 2
    sigma_y: float | Literal["auto"] = "auto"
    scale: float | None = None
    checkpoint_every: int = 10
    baselines: list[str] = field(default_factory=list)
    outputs: list[Literal["hdf5", "nifti", "dicom", "png"]] = field(default_factory=lambda: ["hdf5", "png"])
    out: str = "medrecon-out"


@dataclass(frozen=True)
class PlanOptions:
    """The ``[plan]`` table of ``medrecon plan-mask`` (``medrecon.jobs.planning``; ignored by ``run``).

    Attributes:
        mode: ``adaptive`` (a mask per slice, planned while its posterior is sampled) or ``population`` (one mask
            planned on every slice of the data, to fix for new subjects).
        budget: k-space lines (MRI), views (CT) or scan lines (ultrasound) in the final mask, the kept ones
            included (default: as many as the operator's own mask, views or lines, the fixed acquisition the plan
            is compared with).
        center_lines: centre lines kept from the start: MRI (default ``round(W * operator.center_fraction)``),
            ultrasound scan lines (default 1).
        chains: particles per slice (chains of the job's sampler; an SMC sampler uses its own particles).
        per_round: acquisitions per round.
        start, stop: the sampler steps between which the rounds run (default ``stop``: ``stop_fraction`` of the
            steps, ``medrecon.defaults.ACTIVE``).
        kernel_sigma: kernel width in measurement units (0: automatic, every round).
        sign: ``entropy`` (Gaussian-mixture entropy) or ``ads`` (the released ADS kernel).
        diversity, width: the greedy batch's penalty on neighbours within a round (width in candidate indices;
            0: the spacing of a uniform mask of the budget).
        candidate_views: CT candidate angles, uniform over ``operator.arc_deg``.
        compare: also reconstruct with the operator's fixed mask for the report and the record.
    """

    mode: Literal["adaptive", "population"] = "adaptive"
    budget: int | None = None
    center_lines: int | None = None
    chains: int = D.ACTIVE.chains
    per_round: int = D.ACTIVE.per_round
    start: int = 1
    stop: int | None = None
    kernel_sigma: float = 0.0
    sign: Literal["entropy", "ads"] = D.ACTIVE.sign  # type: ignore[assignment]
    diversity: float = D.ACTIVE.diversity
    width: float = D.ACTIVE.width
    candidate_views: int = D.ACTIVE.candidate_views
    compare: bool = True


@dataclass(frozen=True)
class JobSpec:
    """A validated job: four components, the run options, baseline options and the file it came from."""

    data: ComponentSpec
    operator: ComponentSpec
    prior: ComponentSpec
    sampler: ComponentSpec
    run: RunOptions
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None
    plan: PlanOptions = field(default_factory=PlanOptions)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain TOML-compatible values (every default written out)."""
        out: dict[str, Any] = {}
        for name in COMPONENT_SECTIONS:
            comp: ComponentSpec = getattr(self, name)
            out[name] = {"kind": comp.kind, **{k: _plain(v) for k, v in comp.options.items()}}
        out["run"] = {k: _plain(v) for k, v in dataclasses.asdict(self.run).items()}
        out["baseline"] = {
            name: {k: _plain(v) for k, v in opts.items()} for name, opts in self.baselines.items()
        }
        if self.plan != PlanOptions():  # written only when set, so a job's hash does not change without it
            out["plan"] = {k: _plain(v) for k, v in dataclasses.asdict(self.plan).items() if v is not None}
        return out

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of ``to_dict()``: equal specs share it, whatever their file layout."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"sampler.steps=20"`` -> ``(["sampler", "steps"], 20)``; the value is a TOML literal or a bare word.

    ``run.baselines=["zero_filled"]``, ``operator.mask="random"`` and ``operator.mask=random`` all work.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"--set {text!r}: the key must be section.key, e.g. sampler.steps=20")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        from .shipped import shipped_jobs

        raise InputError(path, f"job file not found (shipped jobs: {', '.join(shipped_jobs())})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(path, f"not a text job file (not UTF-8: byte {err.start})") from None
    except OSError as err:
        raise InputError(path, f"cannot read the job file ({err.strerror or err})") from None
    if "\x00" in text:
        raise InputError(path, "not a text job file (contains NUL bytes)")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError(
                path, "YAML job files need PyYAML (pip install pyyaml); TOML works without it"
            ) from None
        try:
            table = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise InputError(path, f"invalid YAML: {err}") from None
        if not isinstance(table, dict):
            raise InputError(path, "a job file must be a mapping of sections")
        return table
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(path, f"invalid TOML: {err}") from None


def _resolve_path(text: str, root: Path, where: str) -> str:
    """``text`` as an absolute path (relative ones from ``root``); ``ConfigError`` naming ``where`` if invalid."""
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"{where} = {text!r}: must name a file")
    try:
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else (root / p).resolve())
    except (OSError, RuntimeError, ValueError) as err:
        raise ConfigError(f"{where} = {text!r}: not a usable path ({err})") from None


def _table(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """The checked keys of a ``[section]`` table for the dataclass ``cls`` (unknown keys and types refused)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown key {section}.{key}{closest(str(key), names)}; allowed keys: {', '.join(names)}"
            )
    return {k: check_value(v, hints[k], f"{section}.{k}") for k, v in values.items()}


def _plan_options(values: dict[str, Any]) -> PlanOptions:
    opts = PlanOptions(**_table(PlanOptions, values, "plan"))
    for key in ("chains", "per_round", "start", "candidate_views"):
        if getattr(opts, key) < 1:
            raise ConfigError(f"plan.{key} = {getattr(opts, key)}: must be at least 1")
    for key in ("budget", "center_lines", "stop"):
        value = getattr(opts, key)
        if value is not None and value < 0:
            raise ConfigError(f"plan.{key} = {value}: must be non-negative")
    if not (math.isfinite(opts.kernel_sigma) and opts.kernel_sigma >= 0):
        raise ConfigError(f"plan.kernel_sigma = {opts.kernel_sigma}: must be >= 0 (0: automatic)")
    if not 0 <= opts.diversity <= 1 or not opts.width >= 0:
        raise ConfigError(f"plan.diversity = {opts.diversity}, plan.width = {opts.width}: need 0 <= diversity "
                          "<= 1 and width >= 0 (0: automatic)")
    return opts


def _run_options(values: dict[str, Any]) -> RunOptions:
    checked = _table(RunOptions, values, "run")
    opts = RunOptions(**checked)
    if not 0 <= opts.seed < 2**63:
        raise ConfigError(f"run.seed = {opts.seed}: must be in [0, 2**63)")
    if not opts.out.strip() or "\x00" in opts.out:
        raise ConfigError(f"run.out = {opts.out!r}: must name a folder")
    if not opts.device.strip() or "\x00" in opts.device:
        raise ConfigError(f"run.device = {opts.device!r}: must name a torch device, e.g. \"cpu\"")
    if opts.batch_size < 1:
        raise ConfigError(f"run.batch_size = {opts.batch_size}: must be at least 1")
    if opts.slab_slices < 0 or opts.slab_overlap < 0:
        raise ConfigError(f"run.slab_slices = {opts.slab_slices}, run.slab_overlap = {opts.slab_overlap}: need 0 "
                          "(the whole volume) or more")
    if opts.checkpoint_every < 0:
        raise ConfigError(f"run.checkpoint_every = {opts.checkpoint_every}: must be 0 (never) or positive")
    if opts.scale is not None and not (math.isfinite(opts.scale) and opts.scale > 0):
        raise ConfigError(f"run.scale = {opts.scale}: must be a positive finite number (or unset)")
    if opts.sigma_y != "auto" and not (math.isfinite(opts.sigma_y) and opts.sigma_y >= 0):
        raise ConfigError(f'run.sigma_y = {opts.sigma_y}: must be a non-negative finite number or "auto"')
    return opts


def apply_overrides(table: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], set[tuple[str, ...]]]:
    """A copy of ``table`` with ``--set`` overrides applied, and the overridden key paths."""
    table = copy.deepcopy(dict(table))  # overrides never change the caller's (nested) tables
    overridden = set()
    for text in overrides:
        path, value = parse_override(text)
        overridden.add(tuple(path))
        node = table
        for depth, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"--set {text!r}: {where} is a value, not a table")
        node[path[-1]] = value
    return table, overridden


def parse_spec(
    table: dict[str, Any],
    overrides: list[str] = (),  # type: ignore[assignment]
    base_dir: Path | None = None,
    registry: Registry = REGISTRY,
    source: Path | None = None,
) -> JobSpec:
    """Validate a job table (as read from TOML) plus ``--set`` overrides into a ``JobSpec``.

    Relative ``path`` options of ``[data]`` and ``[prior]`` are resolved against ``base_dir`` (the job file's
    folder), or against the working directory when they come from ``overrides``. Raises ``ConfigError`` naming
    the first unknown section, unknown key, missing key or mistyped value.
    """
    table, overridden = apply_overrides(table, overrides)
    sections = (*COMPONENT_SECTIONS, "run", "baseline", "plan")
    for name, value in table.items():
        if name not in sections:
            raise ConfigError(
                f"unknown section [{name}]{closest(str(name), sections)}; allowed: {', '.join(sections)}"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table, got {value!r}")
    components = {}
    for name in COMPONENT_SECTIONS:
        values = dict(table.get(name, {}))
        if "kind" not in values:
            raise ConfigError(f"missing {name}.kind; allowed: {', '.join(registry.names(name))}")
        kind = values.pop("kind")
        if not isinstance(kind, str):
            raise ConfigError(f"{name}.kind = {kind!r}: expected a name")
        options = registry.get(name, kind).validate(values)
        for key in PATH_OPTIONS.get(name, ()):
            if isinstance(options.get(key), str):
                options[key] = _resolve_path(
                    options[key], Path.cwd() if (name, key) in overridden or base_dir is None else base_dir,
                    f"{name}.{key}",
                )
        components[name] = ComponentSpec(kind, options)
    run = _run_options(table.get("run", {}))
    tuned = table.get("baseline", {})
    for name in tuned:
        if not isinstance(name, str):
            raise ConfigError(f"[baseline.{name!r}]: baseline names are strings")
        if name not in run.baselines:
            raise ConfigError(
                f"[baseline.{name}] is set but {name!r} is not in run.baselines "
                f"({', '.join(run.baselines) or 'empty'})"
            )
    baselines = {}
    for name in run.baselines:
        options = tuned.get(name, {})
        if not isinstance(options, dict):
            raise ConfigError(f"[baseline.{name}] must be a table of options, got {options!r}")
        baselines[name] = registry.get("baseline", name).validate(options)
    plan = _plan_options(table.get("plan", {}))
    return JobSpec(**components, run=run, baselines=baselines, source=source, plan=plan)


def load_spec(path: str | Path, overrides: list[str] = (), registry: Registry = REGISTRY) -> JobSpec:  # type: ignore[assignment]
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) job file, apply ``--set`` overrides, validate.

    A bare name of a shipped job (``fastmri_dds_4x.toml``) with no such file here loads the shipped one.
    """
    from .shipped import resolve_job_path

    path = resolve_job_path(path)
    table = _read_file(path)
    with naming_job_file(path):
        return parse_spec(table, overrides, base_dir=path.resolve().parent, registry=registry, source=path)


_GLOB_CHARS = set("*?[")
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".h5", ".hdf5", ".npy", ".npz", ".dcm")


def volume_name(path: str) -> str:
    """The output subfolder of one input volume: its file name without the volume suffix (a DICOM folder: its
    name)."""
    name = Path(path.rstrip("/\\")).name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _volume_paths(value: list[Any], root: Path) -> list[str]:
    """``data.path`` entries as absolute paths, glob patterns expanded (sorted); ``ConfigError`` for a
    non-string entry, a pattern matching nothing, a repeated volume or an empty list."""
    paths: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise ConfigError(f"data.path = {value!r}: expected file or folder names, got {entry!r}")
        if _GLOB_CHARS & set(entry):
            pattern = Path(entry).expanduser()
            base = pattern if pattern.is_absolute() else root / pattern
            matches = sorted(str(p) for p in Path(base.anchor).glob(str(base.relative_to(base.anchor))))
            if not matches:
                raise ConfigError(f"data.path: the pattern {entry!r} matches nothing (from {root})")
            paths.extend(matches)
        else:
            paths.append(_resolve_path(entry, root, "data.path"))
    if not paths:
        raise ConfigError("data.path = []: list at least one volume")
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ConfigError(f"data.path lists {repeated[0]} more than once")
    names = [volume_name(p) for p in paths]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"data.path: two volumes would write to the same output folder {clash[0]!r}; rename "
                          "one or list them in separate jobs")
    return paths


def load_volume_jobs(path: str | Path, overrides: list[str] = (), out: str | Path | None = None,  # type: ignore[assignment]
                     registry: Registry = REGISTRY) -> list[tuple[JobSpec, Path]]:
    """The volume jobs of a job file: one ``(spec, out)`` for a single ``data.path``; for a list of paths (or
    glob patterns) one job per volume, each written to ``<out>/<volume name>/`` (``volume_name``), every spec
    validated before any is returned. ``out`` overrides ``run.out``."""
    from .shipped import resolve_job_path

    path = resolve_job_path(path)
    with naming_job_file(path):
        table, overridden = apply_overrides(_read_file(path), overrides)
        data = table.get("data")
        listed = data.get("path") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            spec = parse_spec(table, overrides, base_dir=path.resolve().parent, registry=registry, source=path)
            return [(spec, Path(out if out is not None else spec.run.out))]
        root = Path.cwd() if ("data", "path") in overridden else path.resolve().parent
        jobs = []
        rest = [o for o in overrides if parse_override(o)[0] != ["data", "path"]]
        for volume in _volume_paths(listed, root):
            one = copy.deepcopy(_read_file(path))
            one.setdefault("data", {})["path"] = volume
            spec = parse_spec(one, rest, base_dir=path.resolve().parent, registry=registry, source=path)
            jobs.append((spec, Path(out if out is not None else spec.run.out) / volume_name(volume)))
        return jobs


@contextlib.contextmanager
def naming_job_file(source: str | Path | None) -> typing.Iterator[None]:
    """Re-raise a ``ConfigError`` as one naming the job file ``source``: ``<file>: <section.key = ...>: ...``."""
    try:
        yield
    except ConfigError as err:
        prefix = f"{source}: "
        if source is None or str(err).startswith(prefix):
            raise
        raise ConfigError(prefix + str(err)) from None
