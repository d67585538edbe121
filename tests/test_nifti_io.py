"""NIfTI volumes: round trip keeping the affine, atomic writes, clear errors for bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrecon.errors import InputError
from medrecon.io.nifti import read_nifti, write_nifti

nib = pytest.importorskip("nibabel")

AFFINE = np.array([[-0.7, 0.0, 0.1, 90.0], [0.0, 0.7, 0.0, -120.0], [0.0, 0.05, 2.5, 33.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_keeps_data_and_affine(tmp_path: Path, suffix):
    data = np.random.default_rng(0).normal(0, 500, size=(10, 12, 4)).astype(np.float32)
    path = write_nifti(tmp_path / f"vol{suffix}", data, AFFINE)
    vol = read_nifti(path)
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, AFFINE, atol=1e-5)
    assert vol.spacing == pytest.approx(tuple(np.linalg.norm(AFFINE[:3, :3], axis=0)))
    assert [p.name for p in tmp_path.iterdir()] == [f"vol{suffix}"]  # no temporary left behind


def test_nan_volume_is_not_written(tmp_path):
    data = np.zeros((4, 4, 2), np.float32)
    data[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        write_nifti(tmp_path / "bad.nii.gz", data, AFFINE)
    assert not list(tmp_path.iterdir())


def test_nan_in_file_is_reported(tmp_path):
    data = np.zeros((4, 4, 2), np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, AFFINE), str(tmp_path / "nan.nii"))
    with pytest.raises(InputError, match="NaN or Inf") as info:
        read_nifti(tmp_path / "nan.nii")
    assert "nan.nii" in str(info.value) and info.value.field == "data"


def test_truncated_file_is_reported(tmp_path):
    path = write_nifti(tmp_path / "t.nii", np.ones((16, 16, 8), np.float32), AFFINE)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(InputError, match="not a readable NIfTI") as info:
        read_nifti(path)
    assert "t.nii" in str(info.value)


def test_bad_affine_and_names(tmp_path):
    with pytest.raises(InputError, match="4x4"):
        write_nifti(tmp_path / "a.nii", np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(InputError, match=".nii"):
        write_nifti(tmp_path / "a.img", np.zeros((2, 2, 2)), np.eye(4))
    with pytest.raises(InputError, match="not found"):
        read_nifti(tmp_path / "absent.nii")
