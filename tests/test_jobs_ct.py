"""CT volume jobs: simulated phantom, sparse-view parallel beam, NIfTI + DICOM + HDF5 outputs, NIfTI input."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest

from medrecon.jobs.components import shepp_logan_volume
from medrecon.jobs.run import run_job
from medrecon.jobs.spec import load_spec
from tests.test_jobs_support import stand_in_registered

SIZE, SLICES = 32, 3


def ct_job(tmp_path, data: str, outputs: str = '["nifti", "dicom", "hdf5"]') -> str:
    return textwrap.dedent(f"""\
        [data]
        {data}

        [operator]
        kind = "parallel_beam_ct"
        views = 8

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 4
        gamma = 0.0

        [run]
        sigma_y = 0.0
        scale = 0.0384
        batch_size = 2
        baselines = ["fbp"]
        outputs = {outputs}
        out = "{tmp_path / "out"}"
        """)


@pytest.fixture(autouse=True)
def _stand_in():
    with stand_in_registered():
        yield


def test_phantom_job_writes_nifti_dicom_and_hdf5(tmp_path):
    from medrecon.io.dicom import read_dicom_series
    from medrecon.io.nifti import read_nifti

    job = tmp_path / "ct.toml"
    job.write_text(
        ct_job(tmp_path, f'kind = "ct_phantom"\nphantom = "shepp_logan"\nsize = {SIZE}\nslices = {SLICES}')
    )
    result = run_job(load_spec(job), progress=False)
    out = tmp_path / "out"
    phantom = read_nifti(out / "phantom.nii.gz").data
    np.testing.assert_allclose(phantom, np.moveaxis(shepp_logan_volume(SIZE, SLICES), 0, -1), atol=0.1)
    recon = read_nifti(out / "reconstruction.nii.gz").data
    assert recon.shape == (SIZE, SIZE, SLICES)
    series = read_dicom_series(out / "dicom")
    assert series.hu.shape == (SLICES, SIZE, SIZE)
    np.testing.assert_allclose(series.hu, np.moveaxis(recon, -1, 0), atol=0.51)
    with h5py.File(out / "reconstructions" / "reconstruction.h5") as hf:
        assert hf["reconstruction"].shape == (SLICES, SIZE, SIZE)
    assert set(result.metrics) == {"dds", "fbp"}
    assert result.record["scale"] == {"scale": 0.0384, "x_init": "fixed by run.scale"}
    assert result.record["problem"]["views"] == 8


def test_nifti_input_round_trip_and_rerun_replaces_dicom(tmp_path):
    from medrecon.io.nifti import write_nifti

    hu = np.moveaxis(shepp_logan_volume(SIZE, SLICES), 0, -1)
    write_nifti(tmp_path / "head.nii.gz", hu, np.diag([0.8, 0.8, 2.0, 1.0]))
    job = tmp_path / "ct.toml"
    job.write_text(
        ct_job(tmp_path, 'kind = "nifti"\npath = "head.nii.gz"\nslices = [0, 2]', outputs='["dicom"]')
    )
    spec = load_spec(job)
    first = run_job(spec, progress=False)
    assert first.reference.shape == (2, SIZE, SIZE)
    second = run_job(spec, progress=False)
    assert second.reconstruction.tobytes() == first.reconstruction.tobytes()
    files = sorted((tmp_path / "out" / "dicom").iterdir())
    assert len(files) == 2 and not list((tmp_path / "out").glob(".dicom*"))


def test_dicom_output_for_mri_is_refused_before_writing(tmp_path):
    from medrecon.errors import ConfigError
    from tests.test_jobs_support import mri_job_text, write_tiny_fastmri

    data = write_tiny_fastmri(tmp_path / "vol.h5")
    job = tmp_path / "job.toml"
    job.write_text(mri_job_text(data, tmp_path / "out"))
    with pytest.raises(ConfigError, match="dicom"):
        run_job(load_spec(job, ['run.outputs=["dicom"]']), progress=False)
    assert not (tmp_path / "out").exists()
