"""fastMRI metrics against scikit-image and the closed-form definitions."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medrecon.metrics import nmse, psnr, ssim


@pytest.fixture
def volume_pair():
    rng = np.random.default_rng(0)
    gt = rng.random((3, 24, 19))
    return gt, gt + 0.05 * rng.standard_normal(gt.shape)


def _skimage_ssim(gt, pred, maxval):
    return np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)])


def test_ssim_matches_skimage_with_volume_max(volume_pair):
    gt, pred = volume_pair
    assert ssim(gt, pred) == pytest.approx(_skimage_ssim(gt, pred, gt.max()), rel=1e-10)


def test_ssim_matches_skimage_with_given_maxval(volume_pair):
    gt, pred = volume_pair
    assert ssim(torch.from_numpy(gt), torch.from_numpy(pred), maxval=2.5) == pytest.approx(
        _skimage_ssim(gt, pred, 2.5), rel=1e-10)


def test_psnr_matches_skimage(volume_pair):
    gt, pred = volume_pair
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=gt.max()), rel=1e-10)
    assert psnr(gt, pred, maxval=3.0) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=3.0), rel=1e-10)


def test_nmse_closed_form(volume_pair):
    gt, pred = volume_pair
    assert nmse(gt, pred) == pytest.approx(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2, rel=1e-10)


def test_identical_images():
    gt = np.random.default_rng(1).random((16, 16))
    assert ssim(gt, gt) == pytest.approx(1.0)
    assert psnr(gt, gt) == float("inf")
    assert nmse(gt, gt) == 0.0


def test_complex_inputs_use_magnitude(volume_pair):
    gt, pred = volume_pair
    phase = np.exp(1j * np.random.default_rng(2).random(gt.shape))
    assert ssim(gt * phase, pred) == pytest.approx(ssim(gt, pred), rel=1e-12)
    assert isinstance(psnr(torch.from_numpy(gt * phase), pred), float)


def test_shape_mismatch_and_tiny_images_raise():
    with pytest.raises(ValueError, match="shapes differ"):
        nmse(np.ones((4, 8, 8)), np.ones((4, 8, 9)))
    with pytest.raises(ValueError, match="window"):
        ssim(np.ones((5, 5)), np.ones((5, 5)))
