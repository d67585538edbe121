"""The ultrasound dehazing job end to end (simulated hazy frames, joint sampling with the shipped tissue and haze
priors, RF/IQ HDF5, the B-mode figure and the record with gCNR and envelope PSNR), hazy RF from HDF5 with and
without a clean reference, and bad inputs refused in one line naming file and field before any compute."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from medrecon.cli import main as cli_main
from medrecon.io.ultrasound import write_rf_h5
from medrecon.jobs.run import run_job
from medrecon.jobs.shipped import shipped_jobs
from medrecon.jobs.spec import load_spec
from medrecon.training.ultrasound_sim import SIM_PROBE, simulate_frames
from operators.ultrasound import Probe
from tests.test_jobs_ultrasound import PROBE

SMALL = ["data.frames=1", "data.samples=64", "data.lines=32", "sampler.steps=3", "run.batch_size=1"]


def test_shipped_dehazing_job_writes_tissue_haze_and_metrics(tmp_path):
    assert "ultrasound_dehazing.toml" in shipped_jobs()
    spec = load_spec("ultrasound_dehazing.toml", SMALL)
    result = run_job(spec, tmp_path / "out", progress=False)
    g = torch.Generator().manual_seed(1234)  # the phantom's own simulation, as the data kind draws it
    probe = Probe(fc=SIM_PROBE.fc, fs=SIM_PROBE.fs, n_elements=32, pitch=SIM_PROBE.pitch,
                  bandwidth=SIM_PROBE.bandwidth, focus=SIM_PROBE.focus)
    tissue = simulate_frames(1, 64, 32, g, "cysts", probe)[0]
    hazy = (tissue + 0.5 * simulate_frames(1, 64, 32, g, "haze", probe)[0]).numpy()
    with h5py.File(tmp_path / "out" / "reconstructions" / "rf.h5") as hf:
        assert hf["rf"].shape == (1, 64, 32) and hf["iq"].shape == (1, 32, 32, 2)
        assert {"hazy_rf", "haze_rf", "reference_rf", "hazy_input_rf"} <= set(hf) and "measured_lines" not in hf
        np.testing.assert_allclose(hf["hazy_rf"][:], hazy, atol=1e-4 * np.abs(hazy).max())
        np.testing.assert_allclose(hf["reference_rf"][:], tissue.numpy(), atol=1e-4)
        assert not np.allclose(hf["rf"][:], hf["hazy_rf"][:])  # the tissue estimate is not the input
    assert result.maps["haze"].shape == (1, 64, 32)
    assert (tmp_path / "out" / "figure.png").stat().st_size > 10_000
    record = json.loads((tmp_path / "out" / "record.json").read_text())
    assert record["problem"]["sources"] == ["tissue", "haze"] and record["problem"]["gamma"] == 0.5
    assert record["sampler"]["haze_prior"]["weights_sha256"] and record["sampler"]["lam"] == 0.5
    for name in ("joint_dehazing", "hazy_input"):
        assert 0 <= record["metrics"][name]["gcnr"] <= 1 and np.isfinite(record["metrics"][name]["envelope_psnr"])


def _hazy_file(tmp_path, reference_shape=None, reference_nan=False):
    g = torch.Generator().manual_seed(9)
    tissue = simulate_frames(1, 64, 32, g, "speckle", PROBE)[0].numpy()
    hazy = tissue + 0.5 * simulate_frames(1, 64, 32, g, "haze", PROBE)[0].numpy()
    ref = tissue if reference_shape is None else np.zeros(reference_shape, np.float32)
    if reference_nan:
        ref = ref.copy()
        ref[0, 3, 4] = np.nan
    write_rf_h5(tmp_path / "hazy.h5", hazy, PROBE, extra={"tissue_rf": ref})
    return tmp_path / "hazy.h5"


def _job(tmp_path, reference='"tissue_rf"', operator="ultrasound_haze", sampler="joint_dehazing", extra=""):
    job = tmp_path / "job.toml"
    job.write_text(f"""
[data]
kind = "ultrasound_rf"
path = "hazy.h5"
reference = {reference}

[operator]
kind = "{operator}"

[prior]
kind = "ultrasound"

[sampler]
kind = "{sampler}"
steps = 2
{extra}

[run]
outputs = ["hdf5"]
""")
    return job


@pytest.mark.parametrize("reference", ['"tissue_rf"', '"none"'])
def test_hazy_rf_from_hdf5_with_and_without_a_clean_reference(tmp_path, reference):
    _hazy_file(tmp_path)
    result = run_job(load_spec(_job(tmp_path, reference, extra="")), tmp_path / "out", progress=False)
    assert result.reconstruction.shape == (1, 64, 32)
    if reference == '"none"':
        assert result.metrics == {} and result.reference is None
    else:
        assert {"envelope_psnr", "psnr"} <= set(result.metrics["joint_dehazing"]) and "gcnr" not in \
            result.metrics["joint_dehazing"]
    with h5py.File(tmp_path / "out" / "reconstructions" / "rf.h5") as hf:
        assert ("reference_rf" in hf) == (reference != '"none"') and "haze_rf" in hf


@pytest.mark.parametrize("case, named", [
    ("missing_reference", "[clean]"),
    ("reference_shape", "[tissue_rf]"),
    ("reference_nan", "[tissue_rf]"),
    ("scanlines_operator", "sampler.kind = 'joint_dehazing' draws 2"),
    ("dds_on_haze", "sampler.kind = 'dds' draws 1"),
    ("linear_lines", "run.baselines: 'linear_lines' needs operator.kind = 'ultrasound_scanlines'"),
    ("haze_prior_missing", "nope.json"),
    ("sigma_order", "sampler.sigma_min = 0.9"),
])
def test_bad_dehazing_inputs_are_one_line_before_any_compute(tmp_path, capsys, case, named):
    _hazy_file(tmp_path, reference_shape=(1, 64, 16) if case == "reference_shape" else None,
               reference_nan=case == "reference_nan")
    job = {
        "missing_reference": lambda: _job(tmp_path, '"clean"'),
        "scanlines_operator": lambda: _job(tmp_path, operator="ultrasound_scanlines"),
        "dds_on_haze": lambda: _job(tmp_path, sampler="dds"),
        "haze_prior_missing": lambda: _job(tmp_path, extra='haze_prior = "nope.json"'),
        "sigma_order": lambda: _job(tmp_path, extra="sigma_min = 0.9"),
    }.get(case, lambda: _job(tmp_path))()
    if case == "linear_lines":
        job.write_text(job.read_text().replace('outputs = ["hdf5"]', 'outputs = ["hdf5"]\nbaselines = ["linear_lines"]'))
    assert cli_main(["run", str(job), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert ("hazy.h5" in err[0]) if case.startswith(("missing", "reference")) else ("job.toml" in err[0]
                                                                                  or "nope.json" in err[0]), err
    assert not (tmp_path / "out").exists()


def test_ultrasound_dds_defaults_come_from_the_defaults_table():
    from medrecon import defaults as D
    from medrecon.jobs.sampling import dds
    from medrecon.jobs.ultrasound import shipped_ultrasound_prior

    chosen = D.dds_for("ultrasound")
    settings = dds(shipped_ultrasound_prior("tissue").meta).settings
    assert (settings["eta"], settings["gamma"], settings["clip"]) == (chosen.eta, chosen.gamma, chosen.clip)
    assert chosen.gamma == 0.0 and chosen.clip and D.dds_for("ct").gamma is None


def test_check_validates_the_dehazing_job_on_its_two_source_domain(capsys, tmp_path):
    args = ["check", "ultrasound_dehazing.toml", "--out", str(tmp_path / "out")]
    for item in SMALL:
        args += ["--set", item]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "adjoint" in text and "(ok)" in text and "sampler joint_dehazing" in text
