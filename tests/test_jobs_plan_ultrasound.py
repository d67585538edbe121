"""``medrecon plan-mask`` on an ultrasound scan-line job: exact budgets, the centre line kept, determinism, the
mask/provenance/report/record outputs, ``medrecon run`` reading the planned lines (per frame), and wrong mask
files named in one line before any compute."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from medrecon.cli import main as cli_main
from medrecon.jobs.planning import plan_job
from medrecon.jobs.run import run_job
from medrecon.jobs.spec import load_spec

FRAMES, LINES = 2, 32
JOB = f"""
[data]
kind = "ultrasound_phantom"
frames = {FRAMES}
samples = 32
lines = {LINES}

[operator]
kind = "ultrasound_scanlines"
factor = 4

[prior]
kind = "ultrasound"

[sampler]
kind = "dds"
steps = 6

[run]
batch_size = {FRAMES}
seed = 3
outputs = ["hdf5", "png"]

[plan]
chains = 2
per_round = 2
stop = 5
"""


@pytest.fixture()
def job_file(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return path


def test_scan_lines_are_planned_exactly_deterministically_and_run_reads_them(job_file, tmp_path):
    spec = load_spec(job_file)
    result = plan_job(spec, out=tmp_path / "plan", progress=False)
    out = tmp_path / "plan"
    assert sorted(p.name for p in out.iterdir()) == ["mask.json", "mask.npy", "record.json", "report.png"]
    mask = np.load(out / "mask.npy", allow_pickle=False)
    meta = json.loads((out / "mask.json").read_text())
    assert mask.shape == (FRAMES, LINES) and mask.dtype == bool and meta["candidates"] == "lines"
    assert meta["fixed_budget"] == LINES // 4 and (mask.sum(-1) == LINES // 4).all()  # the fixed mask's budget
    assert meta["kept_from_start"] == [LINES // 2] and mask[:, LINES // 2].all()
    assert all(len(set(o)) == LINES // 4 - 1 and LINES // 2 not in o for o in meta["order"])
    assert set(result.record["metrics"]) == {"planned", "fixed"}
    again = plan_job(load_spec(job_file, ["plan.compare=false", 'run.outputs=["hdf5"]']), out=tmp_path / "again",
                     progress=False)
    assert np.array_equal(again.mask, mask)  # a seed fixes the plan (comparison or not)
    wider = plan_job(load_spec(job_file, ["plan.budget=11", "plan.compare=false"]), out=tmp_path / "b11",
                     progress=False)
    assert (wider.mask.sum(-1) == 11).all()
    run = load_spec(job_file, [f'operator.mask_file="{out / "mask.npy"}"', 'run.baselines=["linear_lines"]'])
    done = run_job(run, out=tmp_path / "recon", progress=False)
    assert done.record["problem"]["mask"] == "planned" and done.record["problem"]["lines"] == LINES // 4
    with h5py.File(tmp_path / "recon" / "reconstructions" / "rf.h5") as hf:
        kept = hf["measured_lines"][:].astype(bool)
        assert np.array_equal(kept, mask)
        reference = hf["reference_rf"][:]
        for name in ("rf", "linear_lines_rf"):  # the measured lines pass through, frame by frame
            for b in range(FRAMES):
                np.testing.assert_allclose(hf[name][b][:, kept[b]], reference[b][:, kept[b]],
                                           atol=2e-3 * np.abs(reference).max())


@pytest.mark.parametrize("content, message", [
    (np.ones(LINES - 1, dtype=bool), f"the RF needs ({LINES},)"),
    (np.ones((3, LINES), dtype=bool), f"({FRAMES}, {LINES})"),
    (np.eye(FRAMES, LINES, dtype=bool) | np.eye(FRAMES, LINES, 5, dtype=bool) * np.array([[1], [0]], bool),
     "the same number of scan lines"),
])
def test_a_wrong_scan_line_mask_file_is_named_before_any_compute(job_file, tmp_path, capsys, content, message):
    np.save(tmp_path / "bad.npy", content)
    code = cli_main(["run", str(job_file), "--set", f'operator.mask_file="{tmp_path / "bad.npy"}"',
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "bad.npy" in err[0] and "[mask]" in err[0] and message in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, message", [
    ("plan.budget=40", "plan.budget = 40: need 1 (the centre lines) to the 32 scan lines"),
    ('operator.kind="ultrasound_haze"', "plan-mask plans ultrasound scan lines"),
])
def test_bad_scan_line_plans_fail_in_one_line(job_file, tmp_path, capsys, override, message):
    args = ["plan-mask", str(job_file), "--set", override, "--out", str(tmp_path / "out")]
    if "haze" in override:
        job_file.write_text(JOB.replace('kind = "dds"', 'kind = "joint_dehazing"').replace("factor = 4\n", ""))
    assert cli_main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "job.toml" in err[0], err
    assert not (tmp_path / "out").exists()
