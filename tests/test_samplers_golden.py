"""Golden full loops: every sampler, fixed seed, a few steps on 16 x 16 images (complex single-coil MRI and a
real dense "CT" operator), compared with sums stored in ``tests/golden/samplers.json``.

Refresh after an intended change with ``pytest tests/test_samplers_golden.py --update-golden``.
"""
import json
from pathlib import Path

import pytest
import torch

from medrecon.samplers import run

from .test_samplers_driver import PRIOR_ONLY, SAMPLERS, ct_problem, mri_problem, smooth_prior

GOLDEN = Path(__file__).parent / "golden" / "samplers.json"
CASES = [f"{m}-{name}" for m in ("mri", "ct") for name in sorted(SAMPLERS)] + [f"prior-{n}" for n in sorted(PRIOR_ONLY)]


@pytest.fixture(scope="module")
def priors():
    return {True: smooth_prior(16, True), False: smooth_prior(16, False)}


@pytest.fixture(scope="module")
def store(request):
    update = request.config.getoption("--update-golden")
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    yield data, update
    if update:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def _sums(x: torch.Tensor) -> list[float]:
    x = x.to(torch.complex128)
    return [float(x.real.sum()), float(x.imag.sum()), float(x.abs().sum())]


@pytest.mark.parametrize("case", CASES)
def test_golden_full_loop(case, priors, store):
    data, update = store
    kind, name = case.split("-", 1)
    gen = torch.Generator().manual_seed(2024)
    if kind == "prior":
        x = run(PRIOR_ONLY[name](), None, priors[False], gen, shape=(2, 16, 16), dtype=torch.float64,
                progress=False).x
    else:
        problem = mri_problem(2, 16) if kind == "mri" else ct_problem(2, 16)
        x = run(SAMPLERS[name](), problem, priors[kind == "mri"], gen, progress=False).x
    got = _sums(x)
    if update:
        data[case] = got
        return
    assert case in data, f"no golden sums for {case}: run pytest with --update-golden"
    assert got == pytest.approx(data[case], rel=1e-7, abs=1e-8)
