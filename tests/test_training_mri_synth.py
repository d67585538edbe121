"""Synthetic-contrast MR training slices (``medrecon.training.mri_synth``)."""
import functools
import json

import numpy as np
import pytest

from medrecon.files import sha256_file
from medrecon.training import head_ct, mri_synth
from tests.head_template_support import ellipsoid_template

pytest.importorskip("nilearn")

GM, WM, CSF = (mri_synth.MR_SYNTH_CLASSES.index(c) for c in ("gm", "wm", "csf"))


@functools.lru_cache(maxsize=1)
def _ellipsoid_template():
    """A 100 x 124 x 90 mm ellipsoid "brain" on a 1 mm grid padded for the skull and scalp."""
    return ellipsoid_template((150, 180, 60), (75, 90, 15), (50, 62, 45), (75, 90, 18), (8, 25, 10), 0.78, (5, 45))


@pytest.fixture()
def small_template(monkeypatch):
    tpl = _ellipsoid_template()
    monkeypatch.setattr(mri_synth, "head_template", lambda: tpl)
    return tpl


def _border(img: np.ndarray) -> np.ndarray:
    return np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])


def test_deterministic_per_seed_and_seeds_differ(small_template):
    a = mri_synth.mr_synth_slices([3, 4], shape=(48, 48))
    b = mri_synth.mr_synth_slices([3, 4], shape=(48, 48))
    assert a.shape == (2, 48, 48) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a[0], a[1])
    np.testing.assert_array_equal(a[1], mri_synth.random_mr_slice(4, (48, 48)))
    assert mri_synth.mr_synth_slices([], shape=(8, 6)).shape == (0, 8, 6)


@pytest.mark.parametrize("shape", [(48, 48), (64, 48), (40, 56)])
def test_shape_range_and_normalisation(small_template, shape):
    for seed in range(3):
        img, labels = mri_synth.random_mr_slice(seed, shape, return_labels=True)
        assert img.shape == labels.shape == shape
        assert img.dtype == np.float32 and labels.dtype == np.uint8
        assert np.isfinite(img).all() and img.min() >= 0
        assert np.percentile(img, 99.5) == pytest.approx(1.0, rel=1e-3)
        assert img.max() < 3
        assert labels.max() < len(mri_synth.MR_SYNTH_CLASSES)


def test_background_near_zero_and_head_in_the_field(small_template):
    for seed in range(6):
        img, labels = mri_synth.random_mr_slice(seed, (48, 40), return_labels=True)
        assert np.median(_border(img)) < 0.1  # air (Rician noise only) at the field's edge
        assert (_border(labels) == 0).mean() > 0.9
        assert 0.03 < (labels > 0).mean() < 0.8
        assert img[labels > 0].mean() > 4 * img[labels == 0].mean()


def test_contrast_varies_between_seeds(small_template):
    gm_brighter, csf_brighter = set(), set()
    for seed in range(16):
        img, labels = mri_synth.random_mr_slice(seed, (56, 56), return_labels=True)
        if min((labels == c).sum() for c in (GM, WM, CSF)) < 3:
            continue
        gm, wm, csf = (img[labels == c].mean() for c in (GM, WM, CSF))
        gm_brighter.add(bool(gm > wm))
        csf_brighter.add(bool(csf > gm))
    assert gm_brighter == {True, False}  # T1-like (WM > GM) and T2/FLAIR/PD-like (GM > WM) both occur
    assert csf_brighter == {True, False}


def test_bias_field_range():
    for seed in range(5):
        field = mri_synth._bias_field(np.random.default_rng(seed), (40, 56))
        assert field.shape == (40, 56) and 0.6 - 1e-9 <= field.min() and field.max() <= 1.4 + 1e-9


def test_heldout_seeds_are_disjoint_from_training_seeds():
    held = set(mri_synth.MR_SYNTH_HELDOUT_SEEDS)
    assert len(held) == 32 and not held & set(range(100_000))
    assert not held & set(head_ct.HEAD_CT_HELDOUT_SEEDS)
    with pytest.raises(ValueError, match="overlap"):
        mri_synth.mr_synth_training_set(mri_synth.MR_SYNTH_HELDOUT_SEEDS[0] + 1)


def test_cli_writes_the_arrays_and_the_manifest(small_template, tmp_path, monkeypatch):
    manifest_path = tmp_path / "manifests" / "prior_mri_synth_train.json"
    monkeypatch.setattr(mri_synth, "MANIFEST_PATH", manifest_path)
    out = tmp_path / "arrays"
    assert mri_synth.main(["--out", str(out), "--count", "3", "--size", "24", "20"]) == 0
    train, held = np.load(out / "train.npy"), np.load(out / "heldout.npy")
    assert train.shape == (3, 24, 20) and held.shape == (32, 24, 20)
    np.testing.assert_allclose(train[2], mri_synth.random_mr_slice(2, (24, 20)), atol=2e-3)
    m = json.loads(manifest_path.read_text())
    assert m["name"] == "prior_mri_synth_train" and m["modality"] == "mri" and m["image_size"] == [24, 20]
    assert m["train"]["shape"] == [3, 24, 20] and m["train"]["sha256"] == sha256_file(out / "train.npy")
    assert m["heldout"]["sha256"] == sha256_file(out / "heldout.npy")
    sel = m["selection"]
    assert sel["seeds"] == [0, 3] and sel["heldout_seeds"] == [3_000_000, 3_000_032]
    assert "MNI152" in sel["sources"][0] and sel["real_images"] == "none"
    assert all(name in sel["reserved_images"] for name in ("Colin27", "Cranium", "pydicom"))


def test_native_spacing_sets_the_head_size_whatever_the_grid(small_template):
    """``spacing_mm`` fixes the mm per pixel: doubling it quarters the head's area and leaves air around it."""
    areas = {}
    for spacing in (1.6, 3.2):
        img, labels = mri_synth.random_mr_slice(5, (128, 128), return_labels=True, spacing_mm=(spacing, spacing))
        areas[spacing] = (labels > 0).sum()
        assert np.percentile(img, 99.5) == pytest.approx(1.0, rel=1e-3)
    assert 3.2 < areas[1.6] / areas[3.2] < 4.8
    assert (_border(mri_synth.random_mr_slice(5, (128, 128), return_labels=True,
                                              spacing_mm=(3.2, 3.2))[1]) == 0).all()
    with pytest.raises(ValueError, match="spacing_mm"):
        mri_synth.random_mr_slice(0, (16, 16), spacing_mm=(2.0, 1.0))


def test_axial_positions_avoid_the_mri_heldout_band():
    """Synthetic anatomy never comes from the template slices behind the MRI held-out and validation images."""
    from types import SimpleNamespace

    from medrecon.training.datasets import MRI_EXCLUDED_Z_1MM

    tpl = SimpleNamespace(z_range=(37, 178))
    rng = np.random.default_rng(0)
    z = np.array([mri_synth._axial_position(rng, tpl) for _ in range(4000)])
    lo, hi = (v + head_ct.PAD_MM for v in MRI_EXCLUDED_Z_1MM)
    assert z.min() >= 37 and z.max() <= 178
    assert not ((z > lo - 1) & (z < hi)).any()
    assert (z < lo - 1).mean() == pytest.approx((lo - 1 - 37) / (lo - 1 - 37 + 178 - hi), abs=0.03)


def test_cli_native_fields_of_view_and_template_copies(small_template, tmp_path, monkeypatch):
    from medrecon.training import datasets

    monkeypatch.setattr(mri_synth, "MANIFEST_PATH", tmp_path / "manifests" / "prior_mri_synth_train.json")
    template = np.random.default_rng(1).random((2, 12, 12)).astype(np.float32)
    monkeypatch.setattr(datasets, "mri_training_set",
                        lambda: (template, {"sources": ["test"], "excluded_1mm_z": [95, 117]}))
    out = tmp_path / "arrays"
    assert mri_synth.main(["--out", str(out), "--count", "3", "--size", "24", "24", "--spacing", "2", "4",
                           "--template-copies", "2"]) == 0
    train = np.load(out / "train.npy")
    assert train.shape == (3 + 2 * 2, 24, 24)
    np.testing.assert_allclose(train[1], mri_synth.random_mr_slice(1, (24, 24), spacing_mm=(2, 4)), atol=2e-3)
    np.testing.assert_allclose(train[3:5], train[5:7])
    m = json.loads((tmp_path / "manifests" / "prior_mri_native_train.json").read_text())
    assert m["name"] == "prior_mri_native_train" and m["counts"] == {"train": 7, "synthetic": 3, "heldout": 32}
    assert m["selection"]["pixel_spacing_mm"] == [2.0, 4.0] and m["selection"]["template"]["copies"] == 2
    assert "--spacing 2 4 --template-copies 2" in m["generator"]
    assert not (tmp_path / "manifests" / "prior_mri_synth_train.json").exists()


@pytest.mark.slow
def test_mni152_slices_show_a_head_with_air_around_it():
    fractions = []
    for seed in range(6):
        img, labels = mri_synth.random_mr_slice(seed, (64, 64), return_labels=True)
        assert np.median(_border(img)) < 0.1
        fractions.append((labels > 0).mean())
        assert {GM, WM} <= set(np.unique(labels).tolist())
    assert 0.2 < np.median(fractions) < 0.65  # a realistic head fraction, as in fastMRI brain slices
    big = mri_synth.random_mr_slice(0, (368, 320))
    assert big.shape == (368, 320) and np.percentile(big, 99.5) == pytest.approx(1.0, rel=1e-3)
