"""DESIGN.md's import rules, checked by walking every module's imports (relative imports resolved to absolute
module names from the file's package path)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("jobs", "cli", "bench")  # the wiring layers: only cli (and bench's own commands) may import them
RULES = {
    "operators": {"medrecon"},
    "medrecon.priors": {"operators", "medrecon.samplers", "medrecon.training", "medrecon.io", "medrecon.baselines"},
    "medrecon.samplers": {"medrecon.io", "medrecon.training", "medrecon.baselines"},
    "medrecon.training": set(),  # priors, samplers, operators, schedules, files; io too unless io imports training
    "medrecon.io": {"medrecon.samplers", "medrecon.priors"},
    "medrecon.metrics": {"medrecon.samplers", "medrecon.priors", "medrecon.training"},
}
for _package in RULES:
    if _package.startswith("medrecon."):
        RULES[_package] |= {f"medrecon.{t}" for t in TOP}
# Leaf modules every package may import: they import nothing of medrecon beyond what is listed.
LEAVES = {"medrecon.errors": set(), "medrecon.schedules": set(), "medrecon.files": {"medrecon.errors"}}
HEAVY = ["h5py", "pydicom", "nibabel", "ray", "cupy", "sigpy", "matplotlib"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a ``from ... import`` names; relative ones resolved from ``path``'s package."""
    if node.level == 0:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    if node.level - 1 >= len(package):
        raise ValueError(f"{path.relative_to(ROOT)}: relative import beyond the top-level package")
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path, module_level_only: bool = False) -> list[str]:
    """Every module ``path`` imports; ``from X import y`` counts as ``X`` and ``X.y`` (``y`` may be a module)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in (tree.body if module_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, path)
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    return names


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _files(module: str) -> list[Path]:
    path = ROOT / Path(*module.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def test_relative_imports_are_resolved():
    here = ROOT / "medrecon" / "priors" / "checkpoint.py"
    init = ROOT / "medrecon" / "priors" / "__init__.py"
    rel = ast.parse("from ..files import atomic_path\nfrom .adapters import VPDenoiser\nfrom . import base\n").body
    assert [_resolve(n, here) for n in rel] == ["medrecon.files", "medrecon.priors.adapters", "medrecon.priors"]
    assert [_resolve(n, init) for n in rel] == ["medrecon.files", "medrecon.priors.adapters", "medrecon.priors"]
    assert "medrecon.priors.base" in _imports(ROOT / "medrecon" / "priors" / "adapters.py")


@pytest.mark.parametrize("package", sorted(RULES))
def test_forbidden_imports(package):
    bad = []
    for path in _files(package):
        for name in _imports(path):
            if any(_under(name, f) for f in RULES[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_modules_import_no_other_package(leaf):
    bad = [name for name in _imports(_files(leaf)[0])
           if (_under(name, "medrecon") or _under(name, "operators")) and not _under(name, leaf)
           and not any(_under(name, ok) for ok in LEAVES[leaf])]
    assert not bad, f"{leaf} imports {bad}"


def _package_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] == "operators":
        return "operators"
    if parts[0] == "medrecon" and len(parts) > 1:
        return f"medrecon.{parts[1]}"
    return None


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> successors) as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_between_packages():
    """``operators`` and the ``medrecon`` subpackages/modules form a DAG (e.g. io and priors never import each
    other; io reads training's held-out sets, so training must not import io back)."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    paths = sorted((ROOT / "medrecon").rglob("*.py")) + sorted((ROOT / "operators").rglob("*.py"))
    owner = {path: _package_of(_module_name(path)) for path in paths}
    graph: dict[str, set[str]] = {src: set() for src in owner.values() if src is not None}
    for path, src in owner.items():
        if src is not None:
            graph[src] |= {dst for dst in map(_package_of, _imports(path)) if dst in graph and dst != src}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_operators_module_level_imports_only_torch_numpy_scipy():
    allowed = {"torch", "numpy", "scipy", "math", "numbers", "typing", "dataclasses", "functools", "__future__",
               "itertools", "collections", "warnings", "enum", "abc"}
    bad = []
    for path in (ROOT / "operators").rglob("*.py"):
        for name in _imports(path, module_level_only=True):
            if name.split(".")[0] not in allowed and not _under(name.split(".")[0], "operators"):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, "\n".join(bad)


def test_importing_packages_stays_light():
    code = (
        "import sys, operators, medrecon, medrecon.priors, medrecon.samplers, medrecon.io, medrecon.metrics, "
        "medrecon.schedules, medrecon.files, medrecon.training, medrecon.training.train, medrecon.jobs, "
        "medrecon.cli\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout
