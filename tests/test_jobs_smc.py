"""SMC ensembles as job samplers: uncertainty maps in every output format, ESS and coverage in the record, the
std map in the figure, exact resume with weights, and the bad-input checks before any compute."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from medrecon import defaults as D
from medrecon.errors import ConfigError
from medrecon.jobs.run import run_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_ct import SIZE as CT_SIZE
from tests.test_jobs_ct import SLICES as CT_SLICES
from tests.test_jobs_ct import ct_job
from tests.test_jobs_support import SIZE, SLICES, mri_job_text, stand_in_registered, write_tiny_fastmri

SMC = ["sampler.kind=smc", "sampler.particles=4", "sampler.steps=6", "run.sigma_y=0.1"]


@pytest.fixture()
def job_file(tmp_path):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    text = mri_job_text(data, tmp_path / "out").replace("steps = 6\ncg_iters = 3\n", "")
    path.write_text(text.replace('kind = "dds"', 'kind = "smc"\nparticles = 4\nsteps = 20'))
    with stand_in_registered():
        yield path


@pytest.mark.parametrize("kind", ["smc", "tds", "afdps"])
def test_an_ensemble_job_writes_its_uncertainty(job_file, tmp_path, kind):
    spec = load_spec(job_file, [f"sampler.kind={kind}", "run.sigma_y=0.1", 'run.outputs=["hdf5", "nifti", "png"]'])
    result = run_job(spec, progress=False)
    out = tmp_path / "out"
    with h5py.File(out / "reconstructions" / "vol.h5") as hf:
        assert {"reconstruction", "std", "lower", "upper"} <= set(hf)
        std, lower, upper = hf["std"][()], hf["lower"][()], hf["upper"][()]
        rec = hf["reconstruction"][()]
    assert std.shape == rec.shape == (SLICES, SIZE, SIZE)
    assert (std >= 0).all() and (lower <= upper).all() and float(std.max()) > 0
    for name in ("std", "lower", "upper"):
        assert (out / f"{name}.nii.gz").is_file()
    record = json.loads((out / "record.json").read_text())
    unc = record["uncertainty"]
    assert len(unc["ess_final"]) == SLICES and all(0 < e <= 1 for e in unc["ess_final"])
    assert len(unc["resamples"]) == SLICES and unc["level"] == 0.9
    assert set(unc["degenerate_slices"]) <= set(range(SLICES))
    assert ("warning" in unc) == bool(unc["degenerate_slices"])
    assert 0 <= unc["coverage"] <= 1 and 0 <= unc["coverage_foreground"] <= 1
    assert len(unc["weight_exponent_mean"]) == SLICES and all(0 <= e <= 1 for e in unc["weight_exponent_mean"])
    assert unc["exact_weights"] == all(e == 1 for e in unc["weight_exponent_mean"])
    assert record["sampler"]["particles"] == 4 and record["sampler"]["ess_floor"] == D.SMC.ess_floor
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(result.maps["std"], std)


def test_a_killed_ensemble_job_resumes_bit_identically(job_file, tmp_path):
    class Stop(Exception):
        pass

    spec = load_spec(job_file, ["run.sigma_y=0.1"])
    reference = run_job(spec, out=tmp_path / "full", progress=False)

    def kill(k, state):
        if (k, state.step) == (1, 9):
            raise Stop

    out = tmp_path / "killed"
    with pytest.raises(Stop):
        run_job(spec, out=out, progress=False, callback=kill)
    resumed = run_job(spec, out=out, resume=True, progress=False)
    assert resumed.reconstruction.tobytes() == reference.reconstruction.tobytes()
    for name in ("std", "lower", "upper"):
        assert resumed.maps[name].tobytes() == reference.maps[name].tobytes()
    assert resumed.record["uncertainty"] == reference.record["uncertainty"]


@pytest.mark.parametrize("sigma_y", ["0", '"auto"'])  # auto: the tiny file is noiseless, its estimate round-off
def test_noiseless_data_is_refused_before_any_compute(job_file, tmp_path, sigma_y):
    spec = load_spec(job_file, [f"run.sigma_y={sigma_y}"])
    with pytest.raises(ConfigError, match=r"run\.sigma_y = 0.*sampler\.kind = 'smc'"):
        run_job(spec, progress=False)
    assert not (tmp_path / "out" / "record.json").exists()
    assert not (tmp_path / "out" / ".partial").exists()


@pytest.mark.parametrize("override, field", [
    ("sampler.particles=0", "sampler.particles"),
    ("sampler.ess_threshold=0", "sampler.ess_threshold"),
    ("sampler.ess_threshold=1.5", "sampler.ess_threshold"),
    ("sampler.level=1", "sampler.level"),
    ("sampler.ess_floor=1.5", "sampler.ess_floor"),
    ("sampler.ess_floor=-0.1", "sampler.ess_floor"),
])
def test_ensemble_options_out_of_range_are_refused_when_read(job_file, override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_spec(job_file, [override])


def test_a_ct_ensemble_job_writes_hu_std_maps_and_a_sinogram_figure(tmp_path):
    from medrecon.io.nifti import read_nifti

    job = tmp_path / "ct.toml"
    text = ct_job(tmp_path, f'kind = "ct_phantom"\nphantom = "shepp_logan"\nsize = {CT_SIZE}\nslices = {CT_SLICES}',
                  outputs='["nifti", "hdf5", "png"]')
    text = "\n".join(line.strip() for line in text.splitlines())
    job.write_text(text.replace('kind = "dds"\nsteps = 4\ngamma = 0.0', 'kind = "smc"\nparticles = 3\nsteps = 4')
                   .replace("sigma_y = 0.0", "sigma_y = 0.001"))
    with stand_in_registered():
        result = run_job(load_spec(job), progress=False)
    std = read_nifti(tmp_path / "out" / "std.nii.gz")
    assert np.asarray(std.data).shape[-1] == CT_SLICES and float(np.asarray(std.data).min()) >= 0
    assert result.record["uncertainty"]["ess_final"]
    assert (tmp_path / "out" / "figure.png").is_file()


def test_a_degenerate_ensemble_is_flagged_in_the_record(job_file):
    """Six levels and four particles at low noise with exact weights: every slice's particles end as copies of
    one."""
    result = run_job(load_spec(job_file, ["sampler.steps=6", "run.sigma_y=0.02", "sampler.ess_floor=0"]),
                     progress=False)
    unc = result.record["uncertainty"]
    assert unc["exact_weights"]
    assert unc["degenerate_slices"] == list(range(SLICES))
    assert "understate the uncertainty" in unc["warning"]
