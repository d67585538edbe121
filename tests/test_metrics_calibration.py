"""Calibration metrics: interval coverage, z-scores and their histogram, effective sample size."""
import numpy as np
import pytest
import torch

from medrecon.metrics import effective_sample_size, foreground, interval_coverage, z_histogram, z_scores


def test_coverage_of_exact_gaussian_intervals_is_their_level():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=(4, 64, 64)), rng.uniform(0.5, 2.0, size=(4, 64, 64))
    truth = mean + std * rng.normal(size=mean.shape)
    z90 = 1.6448536269514722
    coverage = interval_coverage(truth, mean - z90 * std, mean + z90 * std)
    n = truth.size
    assert abs(coverage - 0.9) <= 4.5 * np.sqrt(0.9 * 0.1 / n)  # binomial bound
    hist = z_histogram(z_scores(truth, mean, std))
    assert abs(hist["mean"]) < 0.02 and abs(hist["std"] - 1) < 0.02
    assert np.allclose(hist["density"], hist["normal_density"], atol=0.02)
    assert abs(sum(d * 0.5 for d in hist["density"]) - 1) < 1e-9


def test_coverage_inside_a_mask_and_the_foreground():
    ref = np.zeros((1, 4, 4))
    ref[0, 1:3, 1:3] = 1.0
    fg = foreground(ref)
    assert fg.sum() == 4
    lower, upper = ref - 0.1, ref + 0.1
    upper[0, 0, 0] = -1.0  # one background pixel missed
    assert interval_coverage(ref, lower, upper) == pytest.approx(15 / 16)
    assert interval_coverage(ref, lower, upper, fg) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        interval_coverage(ref, lower[..., :2], upper)


def test_effective_sample_size_limits():
    assert torch.allclose(effective_sample_size(torch.zeros(10, 3)), torch.ones(3))
    one_hot = torch.full((10, 1), -1e9)
    one_hot[3] = 0
    assert torch.allclose(effective_sample_size(one_hot), torch.tensor([0.1]))
