"""Reconstruction jobs: typed specs from TOML/YAML, one registry of named components, ``run_job`` with
resumable volume runs, atomic outputs and a run record. The ``medrecon run | check | list | demo`` commands
live here."""

from .problem import Volume, VolumeProblem
from .registry import REGISTRY, Registry
from .run import JobResult, PreparedJob, prepare_job, run_job
from .sampling import SamplerComponent
from .spec import ComponentSpec, JobSpec, RunOptions, load_spec, parse_spec

__all__ = [
    "REGISTRY",
    "ComponentSpec",
    "JobResult",
    "JobSpec",
    "PreparedJob",
    "Registry",
    "RunOptions",
    "SamplerComponent",
    "Volume",
    "VolumeProblem",
    "load_spec",
    "parse_spec",
    "prepare_job",
    "run_job",
]
