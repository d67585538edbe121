"""run_job end to end on a tiny multi-coil volume: outputs, record, determinism, exact kill-and-resume."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from medrecon.defaults import DDS
from medrecon.errors import ConfigError
from medrecon.jobs.run import chunk_seed, run_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import SIZE, SLICES, mri_job_text, stand_in_registered, write_tiny_fastmri


class Stop(Exception):
    """Raised by a callback to kill a run mid-way."""


@pytest.fixture()
def job(tmp_path):
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    path = tmp_path / "job.toml"
    path.write_text(mri_job_text(data, tmp_path / "out"))
    with stand_in_registered():
        yield load_spec(path)


def test_run_writes_reconstruction_record_and_figure(job, tmp_path):
    job = load_spec(
        job.source,
        [
            'run.baselines=["zero_filled", "cg_sense"]',
            'run.outputs=["hdf5", "png"]',
            "baseline.cg_sense.iters=5",
        ],
    )
    result = run_job(job, progress=False)
    out = tmp_path / "out"
    with h5py.File(out / "reconstructions" / "vol.h5") as hf:
        rec = hf["reconstruction"][()]
    assert rec.shape == (SLICES, SIZE, SIZE) and rec.dtype == np.float32
    np.testing.assert_array_equal(rec, result.reconstruction)
    with h5py.File(out / "baselines.h5") as hf:
        assert set(hf) == {"zero_filled", "cg_sense"}
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "record.json").read_text())
    assert record["spec_hash"] == job.hash
    assert record["spec"]["sampler"] == {"kind": "dds", "steps": 6, "eta": None, "cg_iters": 3, "gamma": None,
                                         "lam": None, "grid": "karras", "clip": None, "start": None,
                                         "start_sigma": None, "chains": None}
    assert record["sampler"] == {"kind": "dds", "steps": 6, "eta": DDS.eta, "cg_iters": 3, "gamma": None,
                                 "lam": DDS.lam, "grid": "karras", "clip": False, "start": "noise",
                                 "start_sigma": None, "chains": 1}  # resolved from medrecon.defaults
    assert record["versions"]["torch"] == torch.__version__
    assert record["seeds"]["chunks"] == [chunk_seed(7, 0), chunk_seed(7, 1)]
    assert len(record["inputs"]["data"]["sha256"]) == 64
    assert record["scale"]["scale"] > 0
    assert [len(c["step_s"]) for c in record["chunks"]] == [6, 6]
    assert set(record["metrics"]) == {"dds", "zero_filled", "cg_sense"}
    assert all(np.isfinite(m["psnr"]) for m in record["metrics"].values())
    assert not (out / ".partial").exists()
    assert sorted(record["outputs"]) == sorted(str(p.relative_to(out)) for p in result.files)


def test_same_spec_same_bytes(job, tmp_path):
    a = run_job(job, out=tmp_path / "a", progress=False).reconstruction
    b = run_job(job, out=tmp_path / "b", progress=False).reconstruction
    assert a.tobytes() == b.tobytes()


def test_outputs_are_on_the_data_scale(job, tmp_path):
    # The zero-filled baseline is A^H y computed on y / scale and multiplied back, so its mean magnitude
    # matches
    # the reference's up to the undersampling loss, whatever the scale.
    job = load_spec(job.source, ['run.baselines=["zero_filled"]'])
    result = run_job(job, out=tmp_path / "z", progress=False)
    zf, ref = result.baselines["zero_filled"], result.reference
    assert 0.5 < zf.mean() / ref.mean() < 1.5


@pytest.mark.parametrize("kill_at", [(0, 3), (1, 1), (1, 4)])
def test_kill_and_resume_is_bit_identical(job, tmp_path, kill_at):
    reference = run_job(job, out=tmp_path / "full", progress=False).reconstruction
    chunk, step = kill_at

    def kill(k, state):
        if (k, state.step) == (chunk, step):
            raise Stop

    out = tmp_path / "killed"
    with pytest.raises(Stop):
        run_job(job, out=out, progress=False, callback=kill)
    saved = sorted(p.name for p in (out / ".partial").glob("slice_*.pt"))
    assert saved == [f"slice_{i:05d}.pt" for i in range(2 * chunk)]
    assert not (out / "record.json").exists()
    resumed = run_job(job, out=out, resume=True, progress=False)
    assert resumed.record["resumed"] is True
    assert resumed.reconstruction.tobytes() == reference.tobytes()


def test_resume_refuses_a_different_spec(job, tmp_path):
    out = tmp_path / "killed"

    def kill(k, state):
        raise Stop

    with pytest.raises(Stop):
        run_job(job, out=out, progress=False, callback=kill)
    changed = load_spec(job.source, ["sampler.steps=5"])
    with pytest.raises(ConfigError, match="different job"):
        run_job(changed, out=out, resume=True, progress=False)


@pytest.mark.slow
def test_sigkill_and_resume_from_the_command_line_is_bit_identical(tmp_path):
    """A real ``medrecon run`` process killed with SIGKILL after its first chunk, then ``--resume``d."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import medrecon

    data = write_tiny_fastmri(tmp_path / "vol.h5", coils=2, size=128)  # the shipped prior serves 128 x 128
    job = tmp_path / "job.toml"
    job.write_text(
        mri_job_text(data, tmp_path / "out")
        .replace('kind = "gaussian_test"', 'kind = "default"')
        .replace("steps = 6", "steps = 8")
    )
    spec = load_spec(job)
    reference = run_job(spec, out=tmp_path / "full", progress=False).reconstruction
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(medrecon.__file__).parents[1])}
    cmd = [sys.executable, "-m", "medrecon.cli", "run", str(job), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    first_chunk = out / ".partial" / "slice_00001.pt"
    while not first_chunk.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "record.json").exists(), "the run finished before it could be killed"
    assert (out / ".partial" / "slice_00001.pt").exists()
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with h5py.File(out / "reconstructions" / "vol.h5") as hf:
        assert hf["reconstruction"][()].tobytes() == reference.tobytes()
    assert json.loads((out / "record.json").read_text())["resumed"] is True
