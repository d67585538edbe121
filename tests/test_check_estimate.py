"""``medrecon check`` estimates the run time from a one-call probe of the prior and prints the acquisition and
the noise level the sampler will be given."""
from __future__ import annotations

import re

from medrecon.cli import main as cli_main
from medrecon.jobs.estimate import estimate_run_time
from medrecon.jobs.run import prepare_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import mri_job_text, stand_in_registered, write_tiny_fastmri


def test_check_prints_acquisition_and_run_time_estimate(tmp_path, capsys):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    path.write_text(mri_job_text(data, tmp_path / "out"))
    with stand_in_registered():
        assert cli_main(["check", str(path)]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^acquires  equispaced mask: \d+ of 32 lines \(4 centre\), effective acceleration", out,
                         re.M)
        assert re.search(r"^time      estimated run time: ~\d+ s \(sampler", out, re.M)
        assert re.search(r"^noise     sigma_y = 0 \(data units, per real component\): k-space corners and readout "
                         r"edges .*taken as noiseless$", out, re.M)  # the tiny file is noiseless
        job = prepare_job(load_spec(path, ['run.baselines=["zero_filled", "cg_sense"]']))
        est = estimate_run_time(job, setup_s=0.5)
    assert (est.calls_per_chunk, est.chunks) == (6, 2)  # 6 DDS steps, 3 slices in chunks of 2
    assert est.network_call_s > 0 and est.baselines_s > 0
    assert est.total_s == est.sampler_s + est.baselines_s + 0.5
    assert not (tmp_path / "out").exists()
