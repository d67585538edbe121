"""Every ```python block of README.md and docs/*.md runs, and the shell blocks name real commands.

Blocks of one file run in order in one namespace (a later block may use an earlier one's names), in a temporary
working directory. A marker comment on the line before a block changes how it runs:

- ``<!-- module: operators.circular -->``: the block is that new module's file (relative imports work); later
  blocks of the file can import it.
- ``<!-- in-module: medrecon.jobs.sampling -->``: the block is an addition to that existing module (it runs in a
  copy of the module's namespace).
- ``<!-- no-run: reason -->``: not run (kept rare; the reason is required).

Functions named ``test_*`` that a block defines are called. To keep this fast the shipped priors are replaced by
an exact isotropic-Gaussian denoiser with the same sidecar (``D(x, s) = x sd^2 / (sd^2 + s^2)``): the blocks'
code paths run, the network's quality is measured elsewhere (jobs, golden and benchmark tests).
"""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!--\s*(no-run|module|in-module):\s*(.*?)\s*-->\s*$")
MAX_NO_RUN = 3


def blocks(path: Path) -> list[tuple[str, int, str, tuple[str, str] | None]]:
    """``(language, line, code, marker)`` of every fenced block of ``path``."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        out.append((m.group(1), text[: m.start()].count("\n") + 1, m.group(2),
                    None if marker is None else (marker.group(1), marker.group(2))))
    return out


class _IsotropicGaussian(torch.nn.Module):
    """Exact denoiser of x0 ~ N(0, sd^2 I) carrying a shipped prior's sidecar."""

    def __init__(self, meta: dict):
        super().__init__()
        self.meta = meta
        self.sd = float(meta.get("preconditioning", {}).get("sigma_data", 0.5))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        from medrecon.priors import as_sigma

        s = as_sigma(sigma, x).reshape(-1, *([1] * (x.ndim - 1)))
        return x * (self.sd**2 / (self.sd**2 + s**2))


@pytest.fixture()
def fast_priors(monkeypatch):
    from medrecon.priors import checkpoint

    real = checkpoint.load_prior

    def load(name_or_path, *args, **kwargs):
        prior = real(name_or_path, *args, **kwargs)
        return _IsotropicGaussian(prior.meta) if name_or_path in ("mri", "ct") else prior

    monkeypatch.setattr(checkpoint, "load_prior", load)


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """A temporary working directory; registry entries and modules a block adds are removed afterwards."""
    from medrecon.jobs import REGISTRY
    from medrecon.jobs.registry import SECTIONS

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    names = {s: set(REGISTRY.names(s)) for s in SECTIONS}
    modules = set(sys.modules)
    yield
    for s in SECTIONS:
        for name in set(REGISTRY.names(s)) - names[s]:
            REGISTRY.remove(s, name)
    for name in set(sys.modules) - modules:
        if name.startswith(("operators.circular", "medrecon.samplers.gradient_ddim")):
            del sys.modules[name]


def _run_block(code: str, where: str, namespace: dict, marker: tuple[str, str] | None) -> None:
    compiled = compile(code, where, "exec")
    if marker is None:
        before = set(namespace)
        exec(compiled, namespace)
        for name in sorted(set(namespace) - before):
            if name.startswith("test_") and callable(namespace[name]):
                namespace[name]()
        return
    kind, name = marker
    if kind == "module":
        module = types.ModuleType(name)
        module.__package__ = name.rpartition(".")[0]
        module.__file__ = where
        sys.modules[name] = module
        exec(compiled, module.__dict__)
    elif kind == "in-module":
        import importlib

        exec(compiled, dict(vars(importlib.import_module(name))))


@pytest.mark.parametrize("path", [p for p in DOCS if any(b[0] == "python" for b in blocks(p))],
                         ids=lambda p: p.name)
def test_python_blocks_run(path, fast_priors, sandbox, capsys):
    module = types.ModuleType(f"docs_{path.stem}")  # a real module: dataclasses look their module up
    sys.modules[module.__name__] = module
    try:
        for language, line, code, marker in blocks(path):
            if language != "python" or (marker and marker[0] == "no-run"):
                continue
            _run_block(code, f"{path.relative_to(ROOT)}:{line}", module.__dict__, marker)
    finally:
        del sys.modules[module.__name__]


def test_no_run_markers_are_rare_and_give_a_reason():
    skipped = [(p.name, line, m[1]) for p in DOCS for lang, line, _, m in blocks(p) if m and m[0] == "no-run"]
    assert len(skipped) <= MAX_NO_RUN, skipped
    assert all(reason for _, _, reason in skipped)


def test_shell_blocks_name_real_commands():
    from medrecon.cli import COMMANDS

    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for path in DOCS:
        for language, line, code, _ in blocks(path):
            if language not in ("bash", "sh", "shell", ""):
                continue
            lines = code.splitlines()
            prompted = [t[2:] for t in lines if t.startswith("$ ")]  # a transcript: only its commands
            for text in prompted or lines:
                words = text.split()
                if len(words) >= 2 and words[0] == "medrecon" and not words[1].startswith("-"):
                    assert words[1] in COMMANDS, f"{path.name}:{line}: unknown command {text!r}"
                if len(words) >= 2 and words[0] == "make":
                    assert words[1] in targets, f"{path.name}:{line}: no make target in {text!r}"
