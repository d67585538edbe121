"""Training/held-out images of the shipped priors: fixed held-out split, preprocessing, CT window."""
import numpy as np
import pytest

from medrecon.training import datasets


def test_mni152_heldout_slices_are_the_fixed_band_preprocessed_like_training():
    pytest.importorskip("nilearn")
    held = datasets.mni152_heldout_slices()
    assert held.shape == (12, 128, 128) and held.dtype == np.float32
    vol, _ = datasets.mni152_volume(1)
    scale = float(np.percentile(vol, 99.5))
    np.testing.assert_array_equal(held[3], datasets.preprocess_axial_slice(vol[:, :, 103], scale))
    assert 0.9 < held.max() < 1.3 and held.min() >= 0


def test_training_slices_avoid_the_heldout_band_at_both_resolutions():
    pytest.importorskip("nilearn")
    images, records = datasets.mni152_training_slices()
    assert images.shape[1:] == (128, 128) and len(records) == images.shape[0]
    z1 = {r["z"] for r in records if r["resolution_mm"] == 1}
    z2 = {r["z"] for r in records if r["resolution_mm"] == 2}
    assert not z1 & set(range(95, 117)) and len(z1) > 50
    assert not z2 & set(range(47, 59)) and {46, 59} <= z2  # world z 22.5..44.5 mm excluded at 2 mm
    held = datasets.mni152_heldout_slices()
    assert min(np.abs(images - h).max() for h in held) > 0.05


def test_ct_window_and_heldout_seeds():
    np.testing.assert_allclose(datasets.hu_to_unit(np.array([-2000.0, -1000.0, 0.0, 1000.0, 3000.0])),
                               [0, 0, 0.5, 1, 1])
    a = datasets.random_ct_phantom(7, size=32)
    np.testing.assert_array_equal(a, datasets.random_ct_phantom(7, size=32))
    assert a.shape == (32, 32) and a.min() >= -1100 and a.max() <= 1100
    assert not set(datasets.CT_HELDOUT_SEEDS) & set(range(600))
    with pytest.raises(ValueError):
        datasets.ct_training_set(n_random=2_000_000)


def test_fastmri_and_nifti_readers_give_normalised_slices(tmp_path):
    h5py = pytest.importorskip("h5py")
    nib = pytest.importorskip("nibabel")
    import torch

    from medrecon.training.data import load_training_array
    from operators.mri import fft2c

    rng = np.random.default_rng(0)
    img = rng.random((2, 3, 20, 24)) * np.exp(1j * rng.random((2, 3, 20, 24)))
    kspace = fft2c(torch.from_numpy(img)).numpy().astype(np.complex64)
    with h5py.File(tmp_path / "file1.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
    data = {"source": "fastmri", "path": str(tmp_path / "file1.h5"), "sha256": "", "image_size": 16,
            "slice_axis": 2}
    arr, _ = load_training_array(data, "mri")
    assert arr.shape == (2, 16, 16) and arr.dtype == np.complex64
    np.testing.assert_allclose(np.percentile(np.abs(arr), 99.5), 1.0, rtol=1e-5)
    vol = rng.random((10, 12, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    arr, _ = load_training_array({**data, "source": "nifti", "path": str(tmp_path / "v.nii.gz")}, "ct")
    assert arr.shape == (5, 16, 16) and arr.dtype == np.float32
