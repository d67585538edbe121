"""Shipped example jobs are nameable by their bare file name, and ``medrecon list`` shows them."""
from __future__ import annotations

from pathlib import Path

from medrecon.cli import main as cli_main
from medrecon.jobs.shipped import SHIPPED_DIR, resolve_job_path, shipped_jobs
from medrecon.jobs.spec import load_spec


def test_bare_name_loads_the_shipped_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "fastmri_dds_4x.toml" in shipped_jobs()
    spec = load_spec("fastmri_dds_4x.toml")
    assert spec.source == SHIPPED_DIR / "fastmri_dds_4x.toml"
    assert Path(spec.data.options["path"]).is_file()  # the shipped sample, relative to the shipped file
    assert resolve_job_path("fastmri_dds_8x") == SHIPPED_DIR / "fastmri_dds_8x.toml"


def test_a_local_file_wins_and_paths_are_not_rewritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fastmri_dds_4x.toml").write_text("# mine\n")
    assert resolve_job_path("fastmri_dds_4x.toml") == Path("fastmri_dds_4x.toml")
    assert resolve_job_path("sub/fastmri_dds_4x.toml") == Path("sub/fastmri_dds_4x.toml")


def test_missing_job_names_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["check", "nope.toml"]) == 2
    err = capsys.readouterr().err
    assert "nope.toml: job file not found" in err and "fastmri_dds_4x.toml" in err


def test_list_shows_the_shipped_jobs(capsys):
    assert cli_main(["list", "jobs"]) == 0
    out = capsys.readouterr().out
    for name in shipped_jobs():
        assert name in out
    assert cli_main(["list"]) == 0
    assert "fastmri_dds_8x.toml" in capsys.readouterr().out
