"""The example jobs shipped inside the package (``medrecon/configs/*.toml``), nameable by their bare file name.

``medrecon run fastmri_dds_4x.toml`` runs the shipped job when no file of that name exists in the working
directory; a local file of the same name always wins.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_DIR", "resolve_job_path", "shipped_jobs"]

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "configs"


def shipped_jobs() -> dict[str, Path]:
    """File name -> path of every shipped job, sorted by name."""
    return {p.name: p for p in sorted(SHIPPED_DIR.glob("*.toml"))}


def _summary(path: Path) -> str:
    """The first comment line of a job file (what it reconstructs)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def describe_shipped() -> list[str]:
    """One line per shipped job: its name and the first line of its comment."""
    return [f"  {name}: {_summary(path)}" for name, path in shipped_jobs().items()]


def resolve_job_path(path: str | Path) -> Path:
    """``path`` itself when it exists or names a folder; else the shipped job of that bare name (with or without
    ``.toml``) when there is one; else ``path`` unchanged (the caller reports it missing)."""
    p = Path(path)
    if p.exists() or p.parent != Path("."):
        return p
    jobs = shipped_jobs()
    for name in (p.name, f"{p.name}.toml"):
        if name in jobs:
            return jobs[name]
    return p
