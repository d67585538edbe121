"""The fastMRI volume notebook runs end to end in smoke mode (MEDRECON_SMOKE=1) and prints the numbers the job
prints for the same settings, without warnings on stderr; its .ipynb is the stripped jupytext rendering of the .py
source."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "01_fastmri_volume.py"
NOTEBOOK = ROOT / "notebooks" / "01_fastmri_volume.ipynb"


def _kernel_dir(tmp_path: Path) -> Path:
    """A kernelspec ``medrecon-test`` that runs this interpreter (works in a fresh venv, no registration)."""
    spec = tmp_path / "kernels" / "medrecon-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "medrecon test",
                "language": "python",
            }
        )
    )
    return tmp_path


@pytest.mark.notebook
def test_notebook_runs_in_smoke_mode(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("MEDRECON_SMOKE", "1")
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_dir(tmp_path)))
    nb = jupytext.read(SOURCE)
    client = nbclient.NotebookClient(
        nb, kernel_name="medrecon-test", timeout=170, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) >= 3  # mask, coil maps, comparison
    assert "adjoint test relative error" in text
    for method in ("zero-filled", "CG-SENSE", "L1-wavelet", "DDS"):
        assert method in text
    stderr = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("name") == "stderr"
    )
    assert "IProgress" not in stderr and "Warning" not in stderr, stderr
    assert _table(text) == _job_table(tmp_path)


NAMES = {"zero-filled": "zero_filled", "CG-SENSE": "cg_sense", "L1-wavelet": "l1_wavelet", "DDS": "dds"}


def _table(text: str) -> dict[str, tuple[str, str, str]]:
    """The notebook's printed metrics: job method name -> (PSNR, SSIM, NMSE) as printed."""
    rows = re.findall(r"^(zero-filled|CG-SENSE|L1-wavelet|DDS)\s+(\S+)\s+(\S+)\s+(\S+)$", text, re.M)
    return {NAMES[name]: (psnr, ssim, nmse) for name, psnr, ssim, nmse in rows}


def _job_table(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    """The shipped 4x job at the notebook's smoke settings, formatted like the notebook's table."""
    from medrecon.jobs import load_spec, run_job

    smoke = ["data.slices=[0]", "sampler.steps=3", "baseline.cg_sense.iters=5", "baseline.l1_wavelet.iters=5"]
    result = run_job(load_spec("fastmri_dds_4x.toml", smoke), out=tmp_path / "job", progress=False)
    return {
        name: (f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['nmse']:.4f}") for name, m in result.metrics.items()
    }


def test_ipynb_is_the_stripped_rendering_of_the_source():
    jupytext = pytest.importorskip("jupytext")
    source = jupytext.read(SOURCE)
    stored = json.loads(NOTEBOOK.read_text())
    assert [
        c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in stored["cells"]
    ] == [c.source for c in source.cells]
    for cell in stored["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
