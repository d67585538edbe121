"""The ``medrecon`` commands: run / check / list / --help, and every bad input ending in one error line, exit
code 2 and no output files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from medrecon.cli import main
from medrecon.files import sha256_file
from tests.test_jobs_support import COILS, mri_job_text, stand_in_registered, write_tiny_fastmri

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def files(tmp_path):
    """A tiny data file, a job on it (stand-in prior registered) and the output folder it names."""
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    job = tmp_path / "job.toml"
    out = tmp_path / "out"
    job.write_text(mri_job_text(data, out))
    with stand_in_registered():
        yield data, job, out


def fail(capsys, argv: list[str], out: Path, *needles: str) -> str:
    """Run the CLI expecting a user error: exit code 2, one stderr line containing ``needles``, no ``out``."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"medrecon {argv[0]}: error: ")
    for needle in needles:
        assert needle in err, err
    assert not out.exists(), sorted(out.rglob("*"))
    return err


def test_run_and_check_succeed(files, capsys):
    _data, job, out = files
    assert main(["check", str(job)]) == 0
    text = capsys.readouterr().out
    assert "adjoint" in text and "(ok)" in text and "3 slices of 32x32" in text and "memory" in text
    assert not out.exists()
    assert main(["run", str(job), "--quiet", "--set", "run.outputs=['hdf5']"]) == 0
    assert (out / "record.json").is_file() and (out / "reconstructions" / "vol.h5").is_file()


def test_run_out_and_set_override(files, capsys, tmp_path):
    _data, job, out = files
    other = tmp_path / "other"
    assert main(["run", str(job), "--quiet", "--out", str(other), "--set", "sampler.steps=3"]) == 0
    record = json.loads((other / "record.json").read_text())
    assert record["spec"]["sampler"]["steps"] == 3 and not out.exists()


def test_list_shows_every_section_and_options(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for needle in (
        "[data]",
        "fastmri",
        "[operator]",
        "multicoil_mri",
        "acceleration: float (default 4.0)",
        "[sampler]",
        "dds",
        "cg_iters: int (default 5)",
        "[prior]",
        "l1_wavelet",
        "batch_size",
    ):
        assert needle in text
    assert main(["list", "sampler"]) == 0
    assert "[operator]" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "check", "list", "demo"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_unknown_key(files, capsys):
    _data, job, out = files
    fail(
        capsys,
        ["run", str(job), "--set", "sampler.step=10"],
        out,
        "sampler.step",
        "did you mean 'steps'",
        "allowed keys: steps, eta, cg_iters, lam, gamma, grid, clip",
    )


def test_unknown_key_in_file(files, capsys):
    _data, job, out = files
    job.write_text(job.read_text().replace("acceleration = 4", "acceleraton = 4"))
    fail(capsys, ["check", str(job)], out, "operator.acceleraton", "did you mean 'acceleration'")


def test_unknown_kind(files, capsys):
    _data, job, out = files
    fail(capsys, ["run", str(job), "--set", "sampler.kind=ddss"], out, "'ddss'", "did you mean 'dds'")


def test_wrong_type(files, capsys):
    _data, job, out = files
    fail(
        capsys, ["run", str(job), "--set", "sampler.steps=ten"], out, "sampler.steps = 'ten'", "expected int"
    )
    fail(
        capsys,
        ["run", str(job), "--set", "operator.mask=equispace"],
        out,
        "operator.mask",
        "did you mean 'equispaced'",
    )


def test_missing_data_file(files, capsys):
    data, job, out = files
    data.unlink()
    fail(capsys, ["run", str(job)], out, str(data), "file not found")


def test_truncated_data_file(files, capsys):
    data, job, out = files
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])
    fail(capsys, ["run", str(job)], out, str(data), "truncated")


def test_checksum_mismatch(files, capsys):
    data, job, out = files
    good = sha256_file(data)
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    fail(capsys, ["run", str(job), "--set", f'data.sha256="{bad}"'], out, str(data), "[sha256]", "mismatch")
    assert main(["check", str(job), "--set", f'data.sha256="{good}"']) == 0


def test_coil_count_mismatch(files, capsys):
    data, job, out = files
    fail(
        capsys,
        ["run", str(job), "--set", f"operator.coils={COILS + 4}"],
        out,
        str(data),
        f"expects {COILS + 4} coils",
        f"has {COILS}",
    )


def test_nan_in_kspace(files, capsys, tmp_path):
    data, job, out = files
    with h5py.File(data, "a") as hf:
        hf["kspace"][1, 0, 3, 4] = np.nan
    fail(capsys, ["run", str(job)], out, str(data), "kspace[1]", "NaN")


def test_all_zero_kspace(files, capsys):
    data, job, out = files
    with h5py.File(data, "a") as hf:
        hf["kspace"][...] = 0
    fail(capsys, ["run", str(job)], out, str(data), "all zero")


def test_empty_mask(files, capsys):
    data, job, out = files
    with h5py.File(data, "a") as hf:
        hf.create_dataset("mask", data=np.zeros(hf["kspace"].shape[-1], dtype=np.float32))
    fail(capsys, ["run", str(job), "--set", "operator.mask=file"], out, str(data), "[mask]", "empty")


def test_output_path_is_a_file(files, capsys, tmp_path):
    _data, job, _out = files
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    fail(capsys, ["run", str(job), "--out", str(blocker)], tmp_path / "absent", "is a file")
    fail(capsys, ["run", str(job), "--out", str(blocker / "sub")], blocker / "sub", "is a file")
    assert blocker.read_text() == "not a folder"


def test_subprocess_exit_code_and_single_line(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[data]\nkind = "fastmri"\npath = "missing.h5"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "medrecon.cli", "check", str(job)], capture_output=True, text=True, cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "missing operator.kind" in proc.stderr


def test_demo_prints_the_table_and_writes_the_figure(files, capsys, tmp_path, monkeypatch):
    from medrecon.jobs import demo

    _data, job, _out = files
    extra = 'outputs = ["hdf5", "png"]\nbaselines = ["zero_filled"]'
    job.write_text(job.read_text().replace('outputs = ["hdf5"]', extra))
    monkeypatch.setattr(demo, "DEMO_JOB", job)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "3", "--mask", "random", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "random mask" in text and "DDS 3 NFE" in text
    rows = [line.split()[0] for line in text.splitlines() if line.startswith(("dds ", "zero_filled "))]
    assert rows == ["dds", "zero_filled"]
    assert "wall time" in text and (tmp_path / "demo" / "figure.png").is_file()
