"""Noise-aware data consistency: every posterior sampler follows the measurement noise ``sigma_y``.

The prior is an isotropic Gaussian ``N(m, c I)`` (exact denoiser) and ``sigma_data = sqrt(c)`` is given to the
data-consistency steps, so the Gaussian approximation of ``x0 | x_t`` they make is exact and the closed-form
posterior ``N(m_post, C_post)`` of ``y = A x0 + sigma_y n`` is the target for ``sigma_y = 0, 0.05, 0.5``.

Bounds, per coordinate: a sample mean of ``N`` draws lies within ``Z`` standard errors ``sd / sqrt(N)`` of the
true mean (``Z = 4.5``: over the 6 coordinates x 3 noise levels of a test, a false failure has probability
below 1e-4); a sample variance lies within ``Z sqrt(2 / N)`` relative error plus the sampler's discretisation
bias (stated per test). Neighbouring posterior means are further apart than two such bands, so a sampler that
ignored ``sigma_y`` would fail.
"""
import math
from itertools import pairwise

import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser, GaussianMixtureDenoiser
from medrecon.samplers import (
    DDIM,
    DPS,
    InverseProblem,
    KrylovCG,
    PredictorCorrector,
    Projection,
    REDDiff,
    data_weight,
    dds,
    karras,
    run,
    x0_variance,
)
from medrecon.samplers.reddiff import weight
from operators import MatrixOperator

F64 = torch.float64
Z = 4.5
NOISE = (0.0, 0.05, 0.5)
DIM, MEAS, C = 6, 3, 0.5


@pytest.fixture(scope="module")
def gaussian():
    gen = torch.Generator().manual_seed(0)
    prior = GaussianDenoiser(torch.randn(DIM, generator=gen, dtype=F64), C * torch.eye(DIM, dtype=F64))
    a = torch.randn(MEAS, DIM, generator=gen, dtype=F64) / math.sqrt(DIM)
    clean = prior.sample(1, gen) @ a.T
    unit = torch.randn(1, MEAS, generator=gen, dtype=F64)
    cases = {}
    for sy in NOISE:
        y = clean + sy * unit
        cases[sy] = (y, prior.posterior(a, y, sy))
    return prior, a, cases


def _problem(a, y, sy, n):
    return InverseProblem(MatrixOperator(a), y.expand(n, -1).clone(), sy)


def _check_mean(x, post, extra=0.0):
    se = x.std(0) / math.sqrt(x.shape[0])
    err = (x.mean(0) - post.mean[0]).abs()
    assert (err <= Z * se + extra).all(), (err / se).tolist()


def _check_var(x, post, bias):
    ratio = x.var(0) / post.cov.diag()
    tol = Z * math.sqrt(2 / x.shape[0]) + bias
    assert ((ratio - 1).abs() <= tol).all(), ratio.tolist()


def test_the_three_posteriors_are_far_apart(gaussian):
    _, _, cases = gaussian
    for lo, hi in pairwise(NOISE):
        gap = (cases[hi][1].mean[0] - cases[lo][1].mean[0]).abs()
        sd = torch.maximum(cases[lo][1].cov.diag(), cases[hi][1].cov.diag()).sqrt()
        assert float((gap / sd).max()) > 2 * Z / math.sqrt(1500)  # the two acceptance bands do not overlap


def test_data_weight_and_variance():
    assert x0_variance(2.0) == 4.0
    assert x0_variance(2.0, 1.0) == pytest.approx(4.0 / 5.0)
    assert data_weight(0.5, 0.0) == 0.0
    assert data_weight(0.5, 0.1, lam=2.0) == pytest.approx(2 * 0.01 / 0.25)
    assert data_weight(0.0, 0.1) == float("inf")
    with pytest.raises(ValueError, match="lam"):
        KrylovCG(lam=0.0)


@pytest.mark.parametrize("sy", NOISE)
def test_dds_mean_follows_the_noise(gaussian, sy):
    """DDS with an exact proximal solve and ``eta = 1`` keeps the posterior mean exactly (each step maps the
    mean through ``E[x0 | x_t, y]``, an affine map with the posterior mean as fixed point)."""
    prior, a, cases = gaussian
    y, post = cases[sy]
    sampler = dds(60, eta=1.0, cg_iters=20, sigma_data=math.sqrt(C), tol=1e-12, sigmas=karras(60, 0.002, 80))
    x = run(sampler, _problem(a, y, sy, 1500), prior, torch.Generator().manual_seed(1), progress=False).x
    _check_mean(x, post)


@pytest.mark.parametrize("sy", NOISE)
@pytest.mark.parametrize("kind", ["ddim-posterior", "predictor-corrector", "dps"])
def test_posterior_samplers_reach_mean_and_variance(gaussian, sy, kind):
    """With the exact ``E[x0 | x_t, y]`` (proximal solve, or DPS's likelihood gradient with the measurement
    covariance solved exactly) the ancestral DDIM, the predictor-corrector and DPS discretise the posterior's
    reverse process: means exact, variances within 8 % discretisation bias on these grids (measured: <= 3 %)."""
    prior, a, cases = gaussian
    y, post = cases[sy]
    sd = math.sqrt(C)
    if kind == "ddim-posterior":
        sampler = DDIM(karras(200, 0.002, 80), eta=1.0, dc=Projection(tol=1e-12, sigma_data=sd), eps="posterior")
    elif kind == "predictor-corrector":  # the reverse-SDE predictor alone: see the next test for the corrector
        sampler = PredictorCorrector(karras(400, 0.002, 80), corrector_steps=0,
                                     dc=Projection(tol=1e-12, sigma_data=sd))
    else:
        sampler = DPS(karras(200, 0.002, 80), zeta=1.0, sigma_data=sd, cg_iters=MEAS)
    x = run(sampler, _problem(a, y, sy, 1500), prior, torch.Generator().manual_seed(2), progress=False).x
    _check_mean(x, post)
    _check_var(x, post, bias=0.08)


@pytest.mark.parametrize("sy", NOISE)
def test_langevin_corrector_keeps_the_posterior_mean(gaussian, sy):
    """With one Langevin corrector step per level the mean stays exact. (In 6 dimensions its variance is inflated,
    1.3-1.8x, because the step ``2 (snr ||xi|| / ||score||)^2`` is a ratio of chi-square variables with a heavy
    tail; in image dimensions the ratio concentrates.)"""
    prior, a, cases = gaussian
    y, post = cases[sy]
    sampler = PredictorCorrector(karras(200, 0.002, 80), dc=Projection(tol=1e-12, sigma_data=math.sqrt(C)))
    x = run(sampler, _problem(a, y, sy, 1500), prior, torch.Generator().manual_seed(2), progress=False).x
    _check_mean(x, post)


def test_projection_is_the_proximal_step(gaussian):
    """The measurement-space solve equals the image-space proximal solve for every noise level."""
    _prior, a, cases = gaussian
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, DIM, generator=gen, dtype=F64)
    for sy in NOISE:
        y, _ = cases[sy]
        problem = _problem(a, y, sy, 4)
        got = Projection(tol=1e-14)(x0, x0, 0.3, problem)
        want = KrylovCG(iters=50, tol=1e-14)(x0, x0, 0.3, problem)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_fixed_gamma_ignores_the_noise_level(gaussian):
    """``gamma`` reproduces DDS's published fixed weight (and is the only setting that ignores ``sigma_y``)."""
    _prior, a, cases = gaussian
    x0 = torch.ones(2, DIM, dtype=F64)
    y, _ = cases[0.05]
    outs = [KrylovCG(iters=30, gamma=1.0, tol=1e-14)(x0, x0, 0.3, _problem(a, y, sy, 2)) for sy in NOISE]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("sy", NOISE)
def test_reddiff_stationary_point_follows_the_noise(gaussian, sy):
    """At a fixed level ``s`` RED-Diff's fixed point solves ``(A^T A / sy^2 + lam w s P) mu = A^T y / sy^2 +
    lam w s P m0`` with ``P = (C + s^2 I)^{-1}`` (``snr`` weighting, ``lam = 1``: the MAP, i.e. posterior mean,
    under the smoothed prior); for ``sy = 0`` the constrained minimiser, the noiseless posterior mean."""
    prior, a, cases = gaussian
    y, _ = cases[sy]
    s, batch = 0.3, 300
    smoothed = GaussianDenoiser(prior.mean, prior.cov + s**2 * torch.eye(DIM, dtype=F64))
    target = smoothed.posterior(a, y, sy).mean[0]
    sigmas = torch.cat([torch.full((1500,), s, dtype=F64), torch.zeros(1, dtype=F64)])
    sampler = REDDiff(sigmas, lr=0.01, lam=1.0, weighting="snr", init="cg")
    x = run(sampler, _problem(a, y, sy, batch), prior, torch.Generator().manual_seed(4), progress=False).x
    se = x.std(0) / math.sqrt(batch)
    assert ((x.mean(0) - target).abs() <= Z * se + 2e-3).all(), (x.mean(0), target)
    assert weight("snr", s) == pytest.approx(1 / s)


def test_samplers_are_not_blind_to_the_noise(gaussian):
    """The defect this guards against: bit-identical output for different ``sigma_y``."""
    prior, a, cases = gaussian
    y, _ = cases[0.05]
    samplers = {
        "dds": lambda: dds(10, sigmas=karras(10, 0.002, 80)),
        "dps": lambda: DPS(karras(10, 0.002, 80)),
        "pc": lambda: PredictorCorrector(karras(10, 0.002, 80), dc=Projection()),
        "mcg": lambda: DPS(karras(10, 0.002, 80), mcg=True),
        "red-diff": lambda: REDDiff(karras(10, 0.002, 80)),
    }
    for name, build in samplers.items():
        outs = [run(build(), _problem(a, y, sy, 4), prior, torch.Generator().manual_seed(5), progress=False).x
                for sy in NOISE]
        assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2]), name


def test_mixture_posterior_follows_the_noise():
    """Gaussian-mixture prior (two isotropic components, 6 component sd apart along the observed direction):
    the Gaussian approximation of ``x0 | x_t`` is no longer exact, so DPS is biased (exact weighting is what the
    SMC samplers add). Measured with N = 1500: dominant-component weight 0.871 vs 0.885 (sigma_y = 0.05) and
    0.721 vs 0.722 (0.5); mean error <= 0.17. Bounds: the weight within ``Z`` binomial standard errors plus 0.04,
    the mean within ``Z`` standard errors plus 0.25; and the weight must move with ``sigma_y`` as the closed form
    does."""
    means = torch.tensor([[-1.5, 0.0, 0.5], [1.5, 0.5, -0.5]], dtype=F64)
    covs = torch.stack([0.25 * torch.eye(3, dtype=F64)] * 2)
    prior = GaussianMixtureDenoiser(torch.tensor([0.4, 0.6], dtype=F64), means, covs)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=F64) / math.sqrt(2)
    y = torch.tensor([[0.1, 0.2]], dtype=F64)
    n, got, want = 1500, [], []
    for sy in (0.05, 0.5):
        post = prior.posterior(a, y, sy)
        sampler = DPS(karras(200, 0.002, 40), sigma_data=0.5, cg_iters=2)
        x = run(sampler, _problem(a, y, sy, n), prior, torch.Generator().manual_seed(7), progress=False).x
        _check_mean(x, post, extra=0.25)
        w = float((prior.classify(x) == 1).double().mean())
        p = float(post.weights[0, 1])
        assert abs(w - p) <= Z * math.sqrt(p * (1 - p) / n) + 0.04, (w, p)
        got.append(w)
        want.append(p)
    assert (got[0] - got[1]) * (want[0] - want[1]) > 0 and abs(got[0] - got[1]) > 0.1


def test_clip_keeps_tweedie_estimates_in_the_data_range():
    from medrecon.samplers.ddim import clip_to_range

    x = torch.tensor([[-0.5, 0.25, 1.7]])
    assert clip_to_range(x, (0.0, 1.0)).tolist() == [[0.0, 0.25, 1.0]]
    z = torch.tensor([[3 + 4j, 0.1j]], dtype=torch.complex128)
    out = clip_to_range(z, (0.0, 1.0))
    assert torch.allclose(out.abs(), torch.tensor([[1.0, 0.1]], dtype=F64))
    assert torch.allclose(torch.angle(out), torch.angle(z))
    assert clip_to_range(x, None) is x
