"""``--resume`` says what it continues from, records it, and leaves a finished folder alone; the drawn
acquisition is reported by ``run`` and recorded."""
from __future__ import annotations

import json

import pytest

from medrecon.cli import main as cli_main
from medrecon.jobs.resume import describe_progress
from medrecon.jobs.run import run_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import SIZE, mri_job_text, stand_in_registered, write_tiny_fastmri


class Stop(Exception):
    """Raised by a callback to kill a run mid-way."""


@pytest.fixture()
def job(tmp_path):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    path.write_text(mri_job_text(data, tmp_path / "out"))
    with stand_in_registered():
        yield load_spec(path, ["run.checkpoint_every=2"])


def test_resume_reports_and_records_where_it_continues(job, tmp_path):
    out = tmp_path / "killed"

    def kill(k, state):
        if (k, state.step) == (1, 5):
            raise Stop

    with pytest.raises(Stop):
        run_job(job, out=out, progress=False, callback=kill)
    seen = []
    result = run_job(job, out=out, resume=True, progress=False, on_resume=seen.append)
    assert len(seen) == 1
    info = seen[0]
    assert (info["slices_done"], info["slices_total"], info["chunks_done"], info["chunks_total"]) == (2, 3, 1, 2)
    assert (info["next_chunk"], info["next_chunk_step"], info["num_steps"]) == (1, 4, 6)
    assert describe_progress(info) == (
        f"resuming {out}: 2 of 3 slices done (1 of 2 chunks); chunk 1 from step 4 of 6"
    )
    assert result.record["resumed_from"] == info
    assert json.loads((out / "record.json").read_text())["resumed_from"] == info


def test_resume_on_an_empty_folder_says_it_starts_afresh(job, tmp_path, capsys):
    out = tmp_path / "new"
    assert cli_main(["run", str(job.source), "--set", "run.checkpoint_every=2", "--out", str(out), "--resume",
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"resume: {out} holds no unfinished run of this job; starting from the first slice" in text
    assert "acquires  equispaced mask:" in text
    record = json.loads((out / "record.json").read_text())
    assert record["resumed"] is False and record["resumed_from"]["unfinished_run"] is False
    assert record["acquisition"]["lines_total"] == SIZE
    assert record["acquisition"]["acceleration"] == pytest.approx(SIZE / record["acquisition"]["lines"])


def test_resume_on_a_finished_folder_has_nothing_to_do(job, tmp_path, capsys):
    out = tmp_path / "done"
    args = ["run", str(job.source), "--set", "run.checkpoint_every=2", "--out", str(out), "--quiet"]
    assert cli_main(args) == 0
    before = (out / "record.json").read_bytes()
    capsys.readouterr()
    assert cli_main(args + ["--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert (out / "record.json").read_bytes() == before
    assert cli_main(args[:-1] + ["--set", "sampler.steps=5", "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "finished run of a different job" in err and len(err.strip().splitlines()) == 1
    assert (out / "record.json").read_bytes() == before
