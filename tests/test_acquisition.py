"""The drawn acquisition of a job: ``random_fixed`` masks keep round(W / R) lines, and the summary line says
what was drawn (with a hint when a random mask drew far from its nominal acceleration)."""
from __future__ import annotations

import pytest

from medrecon.jobs.acquisition import acquisition_summary, describe_acquisition
from medrecon.jobs.run import prepare_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import SIZE, mri_job_text, stand_in_registered, write_tiny_fastmri


@pytest.fixture()
def job_file(tmp_path):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    path.write_text(mri_job_text(data, tmp_path / "out"))
    with stand_in_registered():
        yield path


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_fixed_mask_keeps_the_line_count_for_every_seed(job_file, seed):
    spec = load_spec(job_file, ['operator.mask="random_fixed"', f"run.seed={seed}"])
    info = prepare_job(spec).problem.info
    assert (info["lines"], info["lines_total"]) == (round(SIZE / 4), SIZE)
    summary = acquisition_summary(info)
    assert summary["acceleration"] == 4.0 and summary["mask"] == "random_fixed"


def test_summary_line_and_random_drift_hint():
    info = {"modality": "mri", "mask": "random", "lines": 7, "lines_total": 128, "center_lines": 5,
            "acceleration_nominal": 8.0}
    line = describe_acquisition(info)
    assert line.startswith("random mask: 7 of 128 lines (5 centre), effective acceleration 18.29x (nominal 8x)")
    assert 'operator.mask = "random_fixed" keeps exactly 16 lines' in line
    assert "random_fixed" not in describe_acquisition({**info, "lines": 16})
    ct = {"modality": "ct", "geometry": "parallel", "views": 8, "arc_deg": 180.0}
    assert describe_acquisition(ct) == "parallel beam: 8 views over 180.0 degrees"
