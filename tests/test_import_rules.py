"""DESIGN.md's import rules, checked by walking every module's imports."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = {
    "operators": {"medrecon"},
    "medrecon/priors": {"operators", "medrecon.samplers", "medrecon.jobs", "medrecon.cli"},
    "medrecon/samplers": {"medrecon.io", "medrecon.jobs", "medrecon.cli"},
    "medrecon/io": {"medrecon.samplers", "medrecon.jobs", "medrecon.cli"},
    "medrecon/metrics": {"medrecon.samplers", "medrecon.jobs", "medrecon.cli"},
}
HEAVY = ["h5py", "pydicom", "nibabel", "ray", "cupy", "sigpy", "matplotlib"]


def _module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _all_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_forbidden_imports(package):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for name in _all_imports(path):
            if any(name == f or name.startswith(f + ".") for f in RULES[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_operators_module_level_imports_only_torch_numpy_scipy():
    allowed = {"torch", "numpy", "scipy", "math", "numbers", "typing", "dataclasses", "functools", "__future__",
               "itertools", "collections", "warnings", "enum", "abc"}
    bad = []
    for path in (ROOT / "operators").rglob("*.py"):
        for name in _module_level_imports(path):
            if name.split(".")[0] not in allowed and not name.startswith("operators"):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, "\n".join(bad)


def test_importing_packages_stays_light():
    code = (
        "import sys, operators, medrecon, medrecon.priors, medrecon.samplers, medrecon.io, medrecon.metrics, "
        "medrecon.jobs, medrecon.cli\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout
