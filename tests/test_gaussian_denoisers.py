"""Exact Gaussian / Gaussian-mixture denoisers: Tweedie's identity, sampling moments, closed-form posteriors."""
import math

import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser, GaussianMixtureDenoiser

F64 = torch.float64


def _spd(n, gen, lo=0.1, hi=2.0):
    q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))[0]
    return q @ torch.diag(torch.linspace(lo, hi, n, dtype=F64)) @ q.T


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(7)


@pytest.fixture
def gaussian(gen):
    return GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64), _spd(4, gen))


@pytest.fixture
def mixture(gen):
    means = torch.stack([torch.full((3,), -1.5, dtype=F64), torch.full((3,), 1.0, dtype=F64)])
    return GaussianMixtureDenoiser(torch.tensor([0.3, 0.7]), means, torch.stack([_spd(3, gen, 0.1, 0.5)] * 2))


@pytest.mark.parametrize("which", ["gaussian", "mixture"])
def test_tweedie_identity_matches_autograd_score(which, request, gen):
    """D(x, s) = x + s^2 grad log p_s(x), with the gradient from autograd on the independent log_prob code."""
    prior = request.getfixturevalue(which)
    x = (2 * torch.randn(5, prior.dim, generator=gen, dtype=F64)).requires_grad_(True)
    sigma = torch.tensor([0.05, 0.3, 1.0, 2.0, 10.0], dtype=F64)
    (grad,) = torch.autograd.grad(prior.log_prob(x, sigma).sum(), x)
    expected = x + sigma[:, None] ** 2 * grad
    torch.testing.assert_close(prior(x.detach(), sigma), expected.detach(), rtol=1e-10, atol=1e-10)


def test_denoiser_limits(gaussian, gen):
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    torch.testing.assert_close(gaussian(x, 1e-8), x, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gaussian(x, 1e8), gaussian.mean.expand(3, 4), rtol=1e-6, atol=1e-6)


def test_sampling_moments_within_statistical_bounds(gaussian, gen):
    """Mean within 4.5 standard errors per coordinate; covariance entries within 4.5 of their standard errors."""
    n = 4000
    draws = gaussian.sample(n, gen)
    c = gaussian.cov
    assert ((draws.mean(0) - gaussian.mean).abs() <= 4.5 * (c.diag() / n).sqrt()).all()
    se = ((c.diag()[:, None] * c.diag()[None] + c**2) / n).sqrt()
    assert ((torch.cov(draws.T) - c).abs() <= 4.5 * se).all()


def test_mixture_sampling_weights(mixture, gen):
    n = 4000
    labels = mixture.classify(mixture.sample(n, gen))
    frac = (labels == 1).double().mean()
    assert abs(float(frac) - 0.7) <= 4.5 * math.sqrt(0.7 * 0.3 / n)


def test_float32_and_image_shapes(gaussian, gen):
    x = torch.randn(2, 2, 2, generator=gen)
    out = gaussian(x, torch.tensor([0.5, 1.0]))
    assert out.shape == x.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.reshape(2, 4).double(), gaussian(x.reshape(2, 4).double(), [0.5, 1.0]),
                               rtol=1e-6, atol=1e-6)


def test_complex_input_uses_real_representation(gen):
    prior = GaussianDenoiser(torch.zeros(4, dtype=F64), _spd(4, gen))
    z = torch.randn(3, 2, generator=gen, dtype=torch.complex128)
    out = prior(z, 0.7)
    assert out.dtype == torch.complex128 and out.shape == z.shape
    torch.testing.assert_close(torch.view_as_real(out).reshape(3, 4), prior(torch.view_as_real(z).reshape(3, 4), 0.7))


def test_wrong_dimension_is_a_clear_error(gaussian):
    with pytest.raises(ValueError, match="dimension 4"):
        gaussian(torch.zeros(2, 5), 1.0)


def test_gaussian_posterior_matches_precision_form(gaussian, gen):
    a = torch.randn(2, 4, generator=gen, dtype=F64)
    y = torch.randn(3, 2, generator=gen, dtype=F64)
    sy = 0.2
    post = gaussian.posterior(a, y, sy)
    prec = torch.linalg.inv(gaussian.cov) + a.T @ a / sy**2
    cov = torch.linalg.inv(prec)
    mean = (cov @ (torch.linalg.solve(gaussian.cov, gaussian.mean)[:, None] + a.T @ y.T / sy**2)).T
    torch.testing.assert_close(post.cov, cov, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(post.mean, mean, rtol=1e-9, atol=1e-10)


def test_mixture_posterior_with_identity_operator_is_the_denoiser(mixture, gen):
    """A = I: the posterior given y is the sigma_y-noised prior's conditional, i.e. D(y, sigma_y) and the
    responsibilities (computed by an independent code path)."""
    y = torch.randn(4, 3, generator=gen, dtype=F64)
    post = mixture.posterior(torch.eye(3, dtype=F64), y, 0.4)
    torch.testing.assert_close(post.weights, mixture.responsibilities(y, 0.4), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(post.mean, mixture(y, 0.4), rtol=1e-9, atol=1e-12)


def test_invalid_parameters():
    with pytest.raises(ValueError):
        GaussianDenoiser(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError):
        GaussianMixtureDenoiser(torch.tensor([0.5, -0.5]), torch.zeros(2, 2), torch.stack([torch.eye(2)] * 2))
