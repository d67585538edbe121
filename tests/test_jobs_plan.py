"""``medrecon plan-mask`` end to end on a tiny multi-coil volume and a tiny CT volume: the mask and its
provenance, the report and record, exact budgets, determinism, population masks, ``medrecon run`` reading the
planned mask, and one-line errors before any compute."""
import json

import numpy as np
import pytest

from medrecon.cli import main as cli_main
from medrecon.errors import InputError
from medrecon.jobs.planning import plan_job
from medrecon.jobs.run import run_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import SIZE, SLICES, mri_job_text, stand_in_registered, write_tiny_fastmri

PLAN = """
[plan]
chains = 3
per_round = 3
"""


@pytest.fixture()
def job_file(tmp_path):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    path.write_text(mri_job_text(data, tmp_path / "out", PLAN))
    with stand_in_registered():
        yield path


def test_plan_mask_writes_mask_provenance_report_and_record(job_file, tmp_path):
    spec = load_spec(job_file, ['run.outputs=["png"]'])
    result = plan_job(spec, progress=False)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["mask.json", "mask.npy", "record.json", "report.png"]
    mask = np.load(out / "mask.npy", allow_pickle=False)
    meta = json.loads((out / "mask.json").read_text())
    centre, budget = round(SIZE * 0.125), meta["fixed_budget"]
    assert budget > centre and mask.shape == (SLICES, SIZE) and mask.dtype == bool
    assert (mask.sum(-1) == budget).all()  # budget exact in every slice
    lo = (SIZE - centre + 1) // 2
    assert mask[:, lo:lo + centre].all()  # the centre lines stay
    assert meta["budget"] == budget and meta["mode"] == "adaptive" and meta["seed"] == 7
    assert meta["schedule"]["counts"] and sum(meta["schedule"]["counts"]) == budget - centre
    assert len(meta["order"]) == SLICES and all(len(set(o)) == budget - centre for o in meta["order"])
    assert all(not set(o) & set(range(lo, lo + centre)) for o in meta["order"])  # never re-acquired
    assert meta["prior"]["kind"] == "gaussian_test" and meta["commit"] and meta["spec_hash"] == spec.hash
    record = json.loads((out / "record.json").read_text())
    assert set(record["metrics"]) == {"planned", "fixed"} and record["network_calls"] > 0
    assert result.metrics["planned"]["psnr"] > 10
    again = plan_job(spec, out=tmp_path / "again", progress=False)
    assert np.array_equal(again.mask, mask)  # a seed fixes the plan


def test_population_masks_are_shared_and_run_reads_them(job_file, tmp_path):
    spec = load_spec(job_file, ['plan.mode="population"', "plan.compare=false"])
    result = plan_job(spec, out=tmp_path / "pop", progress=False)
    lines = result.record["plan"]["fixed_budget"]
    assert result.mask.shape == (1, SIZE) and int(result.mask.sum()) == lines
    mask_file = tmp_path / "pop" / "mask.npy"
    run = load_spec(job_file, ['operator.mask="planned"', f'operator.mask_file="{mask_file}"'])
    done = run_job(run, out=tmp_path / "recon", progress=False)
    assert done.record["problem"]["mask"] == "planned" and done.record["problem"]["lines"] == lines
    plan_job(load_spec(job_file, ["plan.compare=false"]), out=tmp_path / "ad", progress=False)
    run = load_spec(job_file, ['operator.mask="planned"', f'operator.mask_file="{tmp_path / "ad" / "mask.npy"}"'])
    assert run_job(run, out=tmp_path / "recon2", progress=False).reconstruction.shape == (SLICES, SIZE, SIZE)


@pytest.mark.parametrize(
    "override, message",
    [
        ("plan.budget=2", "plan.budget = 2: below the 4 centre lines already acquired"),
        ("plan.budget=40", "plan.budget = 40: above the 32 candidate lines"),
        ("plan.start=6", "outside the sampler's steps"),
        ("plan.per_round=1", "do not fit"),
        ("plan.chains=0", "plan.chains = 0: must be at least 1"),
        ('plan.sign="up"', "plan.sign"),
        ("plan.budgett=3", "unknown key plan.budgett"),
    ],
)
def test_bad_plans_fail_in_one_line_before_any_output(job_file, tmp_path, capsys, override, message):
    code = cli_main(["plan-mask", str(job_file), "--set", override, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (np.ones((2, SIZE), dtype=bool), f"mask has shape (2, {SIZE})"),
        (np.ones(SIZE - 1, dtype=bool), f"this k-space needs ({SIZE},)"),
        (np.full(SIZE, 0.5), "mask must be boolean"),
        (np.zeros(SIZE, dtype=bool), "samples no line"),
    ],
)
def test_a_wrong_mask_file_is_named_before_any_compute(job_file, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.npy"
    np.save(bad, content)
    code = cli_main(["run", str(job_file), "--set", 'operator.mask="planned"', "--set",
                     f'operator.mask_file="{bad}"', "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "bad.npy" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_planned_masks_need_a_file_and_files_need_planned_masks(job_file, capsys):
    assert cli_main(["check", str(job_file), "--set", 'operator.mask="planned"']) == 2
    assert "needs operator.mask_file" in capsys.readouterr().err
    assert cli_main(["check", str(job_file), "--set", 'operator.mask_file="x.npy"']) == 2
    assert 'use mask = "planned"' in capsys.readouterr().err


@pytest.mark.parametrize("start", ["", 'start = "tv"\nstart_sigma = 0.5'], ids=["from_noise", "from_tv"])
def test_ct_views_are_planned_from_candidate_angles(tmp_path, start):
    # from TV: the start estimate runs on the planner's per-slice view selections (one per image, not per chain)
    text = f"""
[data]
kind = "ct_phantom"
slices = 2
size = 32

[operator]
kind = "parallel_beam_ct"
views = 4
noise = 0.01

[prior]
kind = "gaussian_test"

[sampler]
kind = "dds"
steps = 6
cg_iters = 3
{start}

[run]
seed = 1
batch_size = 2
outputs = []
out = "{tmp_path / 'ct'}"

[plan]
chains = 3
candidate_views = 16
"""
    path = tmp_path / "ct.toml"
    path.write_text(text)
    with stand_in_registered():
        result = plan_job(load_spec(path), progress=False)
    assert result.mask.shape == (2, 16) and (result.mask.sum(-1) == 4).all() and result.mask[:, 0].all()
    meta = json.loads((tmp_path / "ct" / "mask.json").read_text())
    assert meta["candidates"] == "views" and len(meta["positions"]) == 16
    assert set(result.metrics) == {"planned", "fixed"}
    views_file = tmp_path / "ct" / "mask.npy"
    with stand_in_registered():
        run = load_spec(path, [f'operator.views_file="{views_file}"'])
        done = run_job(run, out=tmp_path / "ct_run", progress=False)
        assert done.record["problem"]["views"] == 4 and done.record["problem"]["candidate_views"] == 16
        # the run's planned-views reconstruction is the plan's own comparison (same sampler, seed and data)
        np.testing.assert_allclose(done.metrics["dds"]["psnr"], result.metrics["planned"]["psnr"], atol=1.0)
        np.save(tmp_path / "odd.npy", np.array([[True, False, True], [True, False, False]]))
        bad = load_spec(path, [f'operator.views_file="{tmp_path / "odd.npy"}"'])
        with pytest.raises(InputError, match="same number"):
            run_job(bad, out=tmp_path / "never", progress=False)
        assert not (tmp_path / "never").exists()


def test_the_shipped_plan_job_checks(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["check", "fastmri_plan_4x.toml"]) == 0
    out = capsys.readouterr().out
    assert "plan-mask adaptive lines: 32 of 128 (10 kept), 22 rounds" in out
