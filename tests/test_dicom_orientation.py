"""Non-axial DICOM series (sagittal, coronal, oblique): readable on request, refused by CT volume jobs with one
line naming the file and ImageOrientationPatient."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from medrecon.cli import main as cli_main
from medrecon.errors import InputError
from medrecon.io.dicom import AXIAL_TOLERANCE_DEG, read_dicom_series, write_dicom_series
from tests.test_jobs_support import stand_in_registered

pytest.importorskip("pydicom")

SIZE = 16


def _tilted(degrees: float) -> tuple[float, ...]:
    """Rows along x, columns tilted by ``degrees`` from y towards z: the normal is that far from z."""
    t = np.radians(degrees)
    return (1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(np.sin(t)))


ORIENTATIONS = {
    "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "oblique": _tilted(20.0),
}


def _series(folder: Path, orientation: tuple[float, ...]) -> list[Path]:
    hu = np.full((3, SIZE, SIZE), -1000.0, dtype=np.float32)
    hu[:, 4:12, 4:12] = 40.0
    return write_dicom_series(folder, hu, spacing=(2.0, 1.0, 1.0), orientation=orientation)


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
def test_non_axial_series_are_refused_on_request_and_read_otherwise(tmp_path, name):
    files = _series(tmp_path / name, ORIENTATIONS[name])
    assert read_dicom_series(tmp_path / name).hu.shape == (3, SIZE, SIZE)
    with pytest.raises(InputError) as raised:
        read_dicom_series(tmp_path / name, require_axial=True)
    text = str(raised.value)
    assert text.startswith(f"{files[0]} [ImageOrientationPatient]: not an axial series") and "\n" not in text


def test_a_slight_tilt_is_axial(tmp_path):
    _series(tmp_path / "tilt", _tilted(AXIAL_TOLERANCE_DEG - 2))
    assert read_dicom_series(tmp_path / "tilt", require_axial=True).hu.shape == (3, SIZE, SIZE)


def test_a_ct_job_on_a_sagittal_series_fails_in_check_before_anything_is_written(tmp_path, capsys):
    files = _series(tmp_path / "series", ORIENTATIONS["sagittal"])
    job = tmp_path / "job.toml"
    job.write_text(textwrap.dedent(f"""\
        [data]
        kind = "dicom"
        path = "{tmp_path / "series"}"

        [operator]
        kind = "parallel_beam_ct"
        views = 4

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 2

        [run]
        sigma_y = 0.0
        scale = 0.0384
        outputs = ["hdf5"]
        out = "{tmp_path / "out"}"
        """))
    with stand_in_registered():
        for command in (["check", str(job)], ["run", str(job), "--quiet"]):
            assert cli_main(command) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"{files[0]} [ImageOrientationPatient]" in err, err
    assert not (tmp_path / "out").exists()
