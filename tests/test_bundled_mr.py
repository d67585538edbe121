"""Real MR slices bundled with installed packages (``medrecon.training.bundled_mr``): loaded at their own pixel
sizes into one frame, scaled like the MRI priors' training data, usable as a denoising validation set."""
import numpy as np
import pytest

from medrecon.training import bundled_mr

pytest.importorskip("nibabel")


def test_bundled_slices_are_framed_at_their_own_size_and_scaled():
    images, records = bundled_mr.bundled_mr_slices(256)
    assert images.shape == (len(records), 256, 256) and images.dtype == np.float32
    assert images.min() >= 0 and np.isfinite(images).all()
    for image, record in zip(images, records):
        assert image.max() > 0.5                     # each volume's 99.5th percentile is 1
        if record["file"].endswith("example4d.nii.gz"):
            rows = np.nonzero(image.any(axis=1))[0]
            assert rows.max() - rows.min() + 1 <= 128  # kept at 2 mm in the frame: not resized to fill it
    files = {r["file"] for r in records}
    assert "tests/data/example4d.nii.gz" in files    # nibabel is a dependency
    if bundled_mr._package_file("dipy", bundled_mr.SOURCES[0].path) is not None:  # dipy: the data extra
        assert len(records) == 21 and records[0]["pixel_mm"] is None


def test_a_grid_too_small_for_a_slice_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        bundled_mr.bundled_mr_slices(64)


def test_the_prior_bench_scores_the_bundled_set():
    pytest.importorskip("monai")
    from medrecon.bench import mri_prior
    from medrecon.bench.ct_head import denoising_table
    from medrecon.priors.checkpoint import load_prior

    images = mri_prior.sets(("bundled",), count=2)
    (title, arr), = images.items()
    assert "dipy" in title and arr.shape == (2, 256, 256) and np.iscomplexobj(arr)
    table = denoising_table({"mri": load_prior("mri")}, {title: arr[:, 96:160, 96:160]}, (0.1,))
    row = table[title]
    assert row["mri"][0.1] > row["noisy input"][0.1] + 3
