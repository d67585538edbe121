"""Prior-only samplers against exact Gaussian / Gaussian-mixture priors.

Bounds: sample means within 4.5 standard errors per coordinate, covariance entries within 4.5 standard errors
``sqrt((C_ii C_jj + C_ij^2) / N)``, mixture weights within 4.5 binomial standard errors. For DDIM the reference
is the exact law of the discretised chain (a linear-Gaussian recursion per eigen-direction of ``C``), and that
law is checked against the prior separately, so the test separates implementation errors from step-size bias.
"""
import itertools
import math

import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser, GaussianMixtureDenoiser
from medrecon.samplers import DDIM, DPMSolverPP2M, Heun, PredictorCorrector, karras, log_uniform, run
from medrecon.samplers.transitions import ddim_noise_std

F64 = torch.float64
N = 2000  # draws per test: 4 dimensions, so each run takes well under a second


@pytest.fixture(scope="module")
def prior():
    gen = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))[0]
    cov = q @ torch.diag(torch.tensor([0.05, 0.3, 1.0, 2.0], dtype=F64)) @ q.T
    return GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64), cov)


def _assert_moments(x, mean, cov):
    assert ((x.mean(0) - mean).abs() <= 4.5 * (cov.diag() / len(x)).sqrt()).all(), (x.mean(0), mean)
    se = ((cov.diag()[:, None] * cov.diag()[None] + cov**2) / len(x)).sqrt()
    assert ((torch.cov(x.T) - cov).abs() <= 4.5 * se).all(), (torch.cov(x.T), cov)


def ddim_chain_moments(prior, sigmas, eta, init_var=1.0):
    """Exact mean and covariance of DDIM's output for a Gaussian prior: per eigen-direction with eigenvalue l,
    ``z' = a z + c xi`` with ``a = (l + sigma * sqrt(sigma'^2 - c^2)) / (l + sigma^2)``."""
    lam, vecs = prior.evals, prior.evecs
    mu = -(prior.mean @ vecs)
    var = torch.full_like(lam, sigmas[0] ** 2 + init_var)
    for s, s_next in itertools.pairwise(sigmas):
        c = ddim_noise_std(s, s_next, eta) if s_next > 0 else 0.0
        a = (lam + s * math.sqrt(max(0.0, s_next**2 - c**2))) / (lam + s**2)
        mu, var = a * mu, a**2 * var + c**2
    return prior.mean + vecs @ mu, vecs @ torch.diag(var) @ vecs.T


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_its_exact_chain_law(prior, eta):
    sigmas = karras(50)
    x = run(DDIM(sigmas, eta=eta), None, prior, torch.Generator().manual_seed(0), shape=(N, 4), dtype=F64,
            progress=False).x
    _assert_moments(x, *ddim_chain_moments(prior, sigmas.tolist(), eta))


@pytest.mark.parametrize("eta, steps, bound", [(0.0, 50, 0.12), (0.0, 400, 0.015), (1.0, 50, 0.2),
                                               (1.0, 400, 0.03)])
def test_ddim_chain_law_converges_to_the_prior(prior, eta, steps, bound):
    """Step-size bias of DDIM on the Karras grid: relative covariance error (spectral norm) below ``bound``."""
    mean, cov = ddim_chain_moments(prior, karras(steps).tolist(), eta)
    assert torch.linalg.matrix_norm(cov - prior.cov, 2) <= bound * torch.linalg.matrix_norm(prior.cov, 2)
    assert (mean - prior.mean).abs().max() < 0.03  # the start N(0, sigma_max^2 + 1) ignores the prior mean


@pytest.mark.parametrize("sampler", [Heun(karras(18)), DPMSolverPP2M(karras(20)),
                                     PredictorCorrector(log_uniform(300, 0.01, 80), corrector_steps=0)],
                         ids=["heun", "dpmpp2m", "reverse-diffusion"])
def test_prior_samplers_reproduce_gaussian_moments(prior, sampler):
    x = run(sampler, None, prior, torch.Generator().manual_seed(1), shape=(N, 4), dtype=F64, progress=False).x
    _assert_moments(x, prior.mean, prior.cov)


@pytest.mark.parametrize("sampler", [DDIM(karras(100)), DPMSolverPP2M(karras(25)), Heun(karras(18))],
                         ids=["ddim", "dpmpp2m", "heun"])
def test_prior_samplers_reproduce_mixture_weights(sampler):
    gen = torch.Generator().manual_seed(5)
    means = torch.tensor([[-2.0, -2.0], [1.5, 1.0]], dtype=F64)
    covs = torch.stack([0.3 * torch.eye(2, dtype=F64), torch.tensor([[0.4, 0.1], [0.1, 0.2]], dtype=F64)])
    mix = GaussianMixtureDenoiser(torch.tensor([0.25, 0.75]), means, covs)
    x = run(sampler, None, mix, gen, shape=(N, 2), dtype=F64, progress=False).x
    frac = float((mix.classify(x) == 0).double().mean())
    assert abs(frac - 0.25) <= 4.5 * math.sqrt(0.25 * 0.75 / N)
    for k in range(2):
        sel = x[mix.classify(x) == k]
        _assert_moments(sel, means[k], covs[k])


def test_langevin_corrector_keeps_the_prior_marginal():
    """Predictor-corrector (snr 0.16, one Langevin step per level) on a 64-dimensional smooth Gaussian prior:
    means within 4.5 standard errors, every variance within 30 % of the prior's (4.5 standard errors of a
    variance ratio from 500 draws is 28 %). In a handful of dimensions the snr rule (step set by the ratio of
    noise and score norms) is unstable and inflates the variance; it is meant for images."""
    idx = torch.arange(64, dtype=F64)
    cov = torch.exp(-((idx[:, None] - idx[None]) ** 2) / 18.0) + 0.05 * torch.eye(64, dtype=F64)
    prior = GaussianDenoiser(torch.sin(idx / 5), cov)
    x = run(PredictorCorrector(log_uniform(100, 0.01, 80)), None, prior, torch.Generator().manual_seed(2),
            shape=(500, 64), dtype=F64, progress=False).x
    assert ((x.mean(0) - prior.mean).abs() <= 4.5 * (cov.diag() / 500).sqrt()).all()
    ratio = torch.cov(x.T).diag() / cov.diag()
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio
