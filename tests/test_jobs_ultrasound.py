"""The ultrasound job kind end to end (simulated frames, the shipped tissue prior, RF/IQ HDF5 and the B-mode
figure), RF inputs from HDF5 and .npy, and bad inputs refused with one line naming file and field."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from medrecon.cli import main as cli_main
from medrecon.errors import InputError
from medrecon.io.ultrasound import read_rf, write_rf_h5
from medrecon.training.ultrasound_sim import SIM_PROBE, simulate_frames
from medrecon.jobs.run import run_job
from medrecon.jobs.shipped import shipped_jobs
from medrecon.jobs.spec import load_spec
from operators.ultrasound import Probe

SMALL = ["data.frames=1", "data.samples=64", "data.lines=32", "sampler.steps=4", "run.batch_size=1"]
PROBE = Probe(fc=SIM_PROBE.fc, fs=SIM_PROBE.fs, n_elements=32, pitch=SIM_PROBE.pitch)


def test_shipped_ultrasound_job_writes_rf_iq_and_bmode(tmp_path):
    assert "ultrasound_scanlines_2x.toml" in shipped_jobs()
    spec = load_spec("ultrasound_scanlines_2x.toml", SMALL)
    result = run_job(spec, tmp_path / "out", progress=False)
    with h5py.File(tmp_path / "out" / "reconstructions" / "rf.h5") as hf:
        rf, iq = hf["rf"][:], hf["iq"][:]
        reference, mask = hf["reference_rf"][:], hf["measured_lines"][:].astype(bool)
        assert rf.shape == (1, 64, 32) and iq.shape == (1, 32, 32, 2) and hf.attrs["fs"] == SIM_PROBE.fs
        assert "linear_lines_rf" in hf
    assert mask.sum() == 16
    np.testing.assert_allclose(rf[..., mask], reference[..., mask], atol=2e-3 * np.abs(reference).max())
    assert (tmp_path / "out" / "figure.png").stat().st_size > 10_000
    record = json.loads((tmp_path / "out" / "record.json").read_text())
    assert record["problem"]["lines"] == 16 and record["inputs"]["prior"]["modality"] == "ultrasound"
    for name in ("dds", "linear_lines"):
        assert np.isfinite(result.metrics[name]["envelope_psnr"]) and np.isfinite(record["metrics"][name]["psnr"])
    assert record["metrics"]["linear_lines"]["psnr"] > 10


def _frames(n=2):
    return simulate_frames(n, 64, 32, torch.Generator().manual_seed(5), "speckle", PROBE)[0].numpy()


def _rf_job(tmp_path, path, extra=""):
    job = tmp_path / "job.toml"
    job.write_text(f"""
[data]
kind = "ultrasound_rf"
path = "{path}"
{extra}

[operator]
kind = "ultrasound_scanlines"
factor = 2

[prior]
kind = "ultrasound"

[sampler]
kind = "dds"
steps = 2
gamma = 0.0

[run]
sigma_y = 0.0
outputs = ["hdf5"]
""")
    return job


def test_rf_from_hdf5_and_npy_round_trip(tmp_path):
    frames = _frames()
    write_rf_h5(tmp_path / "rf.h5", frames, PROBE)
    data = read_rf(tmp_path / "rf.h5", fs=PROBE.fs, n_elements=32)
    np.testing.assert_array_equal(data.rf, frames)
    assert data.probe.pitch == PROBE.pitch and data.probe.fc == PROBE.fc
    np.save(tmp_path / "rf.npy", frames)
    spec = load_spec(_rf_job(tmp_path, "rf.npy", f"fs = {PROBE.fs}\nfc = {PROBE.fc}\npitch = {PROBE.pitch}"))
    result = run_job(spec, tmp_path / "out", progress=False)
    assert result.reconstruction.shape == (2, 64, 32)
    with h5py.File(tmp_path / "out" / "reconstructions" / "rf.h5") as hf:
        assert hf.attrs["n_elements"] == 32


@pytest.mark.parametrize("case, field", [
    ("fs", "fs"), ("fc", "fc"), ("elements", "n_elements"), ("nan", "rf"), ("inf", "rf"), ("mask", "mask"),
])
def test_bad_ultrasound_inputs_are_one_line_naming_file_and_field(tmp_path, capsys, case, field):
    frames = _frames()
    extra = ""
    if case in ("nan", "inf"):
        frames[1, 10, 3] = np.nan if case == "nan" else np.inf
    write_rf_h5(tmp_path / "rf.h5", frames, PROBE)
    if case == "fs":
        extra = "fs = 40e6"
    elif case == "fc":
        extra = "fc = 5e6"
    elif case == "elements":
        extra = "elements = 64"
    job = _rf_job(tmp_path, "rf.h5", extra)
    if case == "mask":
        job.write_text(job.read_text().replace("factor = 2", "mask = [1, 0, 1, 0]"))
    assert cli_main(["run", str(job), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rf.h5" in err[0] and f"[{field}]" in err[0], err


def test_npy_without_geometry_names_the_missing_field(tmp_path):
    np.save(tmp_path / "rf.npy", _frames(1))
    with pytest.raises(InputError, match=r"rf.npy \[fs\]"):
        read_rf(tmp_path / "rf.npy")


def test_bench_ultrasound_quick_writes_its_tables(tmp_path):
    from medrecon.bench.cli import suite_parser

    out = tmp_path / "us.md"
    args = suite_parser("ultrasound").parse_args(["--quick", "--threads", "1", "--gammas", "0.3", "--out", str(out)])
    assert args._suite_main(args) == 0
    text = out.read_text()
    for row in ("| 0.3 | hazy input |", "| 0.3 | joint diffusion", "| 2x (16/32) | DDS", "| 4x (8/32) | linear",
                "| 64x32 | 2048 |"):
        assert row in text, row


def test_bench_ultrasound_real_figure_shows_the_pydicom_ultrasound_cine(tmp_path):
    from medrecon.bench.ultrasound import real_bmode_db, real_figure

    db = real_bmode_db(dynamic_range_db=50.0)
    assert db.shape == (30, 240, 320) and -50.0 <= db.min() < db.max() <= 0.0
    real_figure(str(tmp_path / "real.png"))
    assert (tmp_path / "real.png").stat().st_size > 20_000
