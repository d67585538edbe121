"""Posterior samplers against closed-form linear-Gaussian posteriors (exact Gaussian prior, dense operators).

Bounds (per coordinate, in posterior standard deviations ``psd``): DDS mean within 0.6 psd and DPS / MCG means
within 0.5 psd of the exact posterior mean (these samplers are approximate; measured offsets are 0.3-0.4 psd for
DDS and <= 0.35 psd for DPS / MCG, against a prior mean up to 9 psd away); RED-Diff's mean over independent runs
within 5 standard errors of its closed-form stationary point. Consistency: ``||A x - y|| <= 1e-8 ||y||``.
"""
import math

import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import (
    DDIM,
    DPS,
    InverseProblem,
    KrylovCG,
    PredictorCorrector,
    Projection,
    REDDiff,
    dds,
    karras,
    log_uniform,
    run,
    vp_linear,
)
from medrecon.samplers.reddiff import weight
from operators import Diagonal, MatrixOperator

F64 = torch.float64
N = 400


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))[0]
    cov = q @ torch.diag(torch.tensor([0.05, 0.3, 1.0, 2.0], dtype=F64)) @ q.T
    prior = GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64), cov)
    a = torch.randn(2, 4, generator=gen, dtype=F64)
    sigma_y = 0.1
    y = prior.sample(1, gen) @ a.T + sigma_y * torch.randn(1, 2, generator=gen, dtype=F64)
    post = prior.posterior(a, y, sigma_y)
    problem = InverseProblem(MatrixOperator(a), y.expand(N, 2).clone(), sigma_y)
    return prior, a, y, problem, post


def _offset_in_psd(x, post):
    return ((x.mean(0) - post.mean[0]) / post.cov.diag().sqrt()).abs()


def test_dds_mean_near_posterior_mean(setup):
    prior, a, y, problem, post = setup
    x = run(dds(50, eta=0.85, cg_iters=5, gamma=1.0), problem, prior, torch.Generator().manual_seed(1),
            progress=False).x
    assert (_offset_in_psd(x, post) <= 0.6).all(), _offset_in_psd(x, post)
    assert float((x @ a.T - y).norm(dim=1).mean()) < 0.05


@pytest.mark.parametrize("mcg", [False, True], ids=["dps", "mcg"])
def test_dps_mean_near_posterior_mean(setup, mcg):
    prior, _a, _y, problem, post = setup
    sampler = DPS(karras(200, 0.002, 80), zeta=0.1, guidance="paper", vp_scaling=False, mcg=mcg)
    x = run(sampler, problem, prior, torch.Generator().manual_seed(1), progress=False).x
    assert (_offset_in_psd(x, post) <= 0.5).all(), _offset_in_psd(x, post)


@pytest.mark.parametrize("weighting", ["linear", "snr"])
def test_reddiff_reaches_its_stationary_point(setup, weighting):
    """At a fixed noise level s the expected RED-Diff gradient vanishes at
    ``(A^T A / sy^2 + lam w(s) s P) mu = A^T y / sy^2 + lam w(s) s P m0`` with ``P = (C + s^2 I)^{-1}``."""
    prior, a, y, _, _ = setup
    s, lam, sy, batch = 0.3, 0.25, 0.1, 200
    p = torch.linalg.inv(prior.cov + s**2 * torch.eye(4, dtype=F64))
    reg = lam * weight(weighting, s) * s
    mu_star = torch.linalg.solve(a.T @ a / sy**2 + reg * p, (y @ a).T / sy**2 + reg * (p @ prior.mean)[:, None]).T
    sigmas = torch.cat([torch.full((2000,), s, dtype=F64), torch.zeros(1, dtype=F64)])
    problem = InverseProblem(MatrixOperator(a), y.expand(batch, 2).clone(), sy)
    x = run(REDDiff(sigmas, lr=0.01, lam=lam, weighting=weighting), problem, prior,
            torch.Generator().manual_seed(1), progress=False).x
    se = x.std(0) / math.sqrt(batch)
    assert ((x.mean(0) - mu_star[0]).abs() <= 5 * se + 2e-3).all(), (x.mean(0), mu_star)


@pytest.mark.parametrize("dtype", [F64, torch.complex128])
def test_noiseless_dds_is_measurement_consistent(dtype):
    gen = torch.Generator().manual_seed(4)
    dim = 4 if dtype == F64 else 2  # the complex image has 2 entries = 4 real components
    prior = GaussianDenoiser(torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    a = torch.randn(2 if dtype == F64 else 1, dim, generator=gen, dtype=dtype)
    x_true = torch.randn(8, dim, generator=gen, dtype=dtype)
    problem = InverseProblem(MatrixOperator(a), x_true @ a.T, 0.0)
    x = run(dds(10, eta=0.85, cg_iters=10, gamma=0.0, tol=1e-12), problem, prior, torch.Generator().manual_seed(0),
            progress=False).x
    assert x.dtype == dtype
    assert float(problem.residual_norm(x).max()) <= 1e-8 * float(problem.y.abs().max())


def _unitary_dft(n):
    k = torch.arange(n, dtype=F64)
    return torch.exp(-2j * math.pi * k[:, None] * k[None] / n) / math.sqrt(n)


def test_projection_on_masked_fourier_is_hard_kspace_replacement():
    gen = torch.Generator().manual_seed(5)
    f = _unitary_dft(8)
    mask = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    op = Diagonal(mask.to(torch.complex128)) @ MatrixOperator(f)
    x = torch.randn(3, 8, generator=gen, dtype=torch.complex128)
    y = op(torch.randn(3, 8, generator=gen, dtype=torch.complex128))
    out = Projection(iters=1, tol=None).solve(x, InverseProblem(op, y), y)
    replaced = torch.where(mask, y, x @ f.T) @ f.conj()
    torch.testing.assert_close(out, replaced, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, torch.complex128])
def test_projection_reaches_consistency_for_general_operators(dtype):
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(3, 5, generator=gen, dtype=dtype)
    problem = InverseProblem(MatrixOperator(a), torch.randn(4, 3, generator=gen, dtype=dtype))
    x = torch.randn(4, 5, generator=gen, dtype=dtype)
    out = Projection(iters=20, tol=1e-12)(x, x, 1.0, problem)
    assert float(problem.residual_norm(out).max()) <= 1e-8 * float(problem.y.abs().max())


@pytest.mark.parametrize("sampler", [
    DDIM(vp_linear(20), eta=0.85, noise="dds", dc=Projection(tol=1e-12)),
    PredictorCorrector(log_uniform(20, 0.01, 50), dc=Projection(tol=1e-12)),
    DPS(karras(20, 0.002, 80), zeta=0.1, guidance="paper", vp_scaling=False, mcg=True),
], ids=["ddim-projection", "predictor-corrector", "mcg"])
def test_projection_samplers_end_measurement_consistent(setup, sampler):
    """For noiseless data the projection samplers end exactly on ``A x = y``."""
    prior, a, y, problem, _ = setup
    noiseless = InverseProblem(problem.A, problem.y[:16], 0.0)
    x = run(sampler, noiseless, prior, torch.Generator().manual_seed(0), progress=False).x
    assert float((x @ a.T - y).norm(dim=1).max()) <= 1e-8 * float(y.norm())


def test_krylov_cg_solves_the_proximal_system():
    """With enough iterations KrylovCG returns (A^H A + gamma I)^{-1} (A^H y + gamma x_hat) exactly."""
    gen = torch.Generator().manual_seed(8)
    a = torch.randn(3, 5, generator=gen, dtype=torch.complex128)
    y = torch.randn(2, 3, generator=gen, dtype=torch.complex128)
    x_hat = torch.randn(2, 5, generator=gen, dtype=torch.complex128)
    out = KrylovCG(iters=20, gamma=0.7, tol=1e-14)(x_hat, x_hat, 0.5, InverseProblem(MatrixOperator(a), y))
    lhs = a.conj().T @ a + 0.7 * torch.eye(5, dtype=torch.complex128)
    expected = torch.linalg.solve(lhs, (y @ a.conj() + 0.7 * x_hat).T).T
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
