"""Independent chains averaged (``samplers.IndependentChains``, job option ``sampler.chains``).

Exact check: from a fixed point, a Gaussian prior's chain output is Gaussian with the linear-Gaussian recursion's
mean ``m`` and covariance ``C`` (``test_samplers_warm_start``); the mean of ``K`` independent chains is then
``N(m, C / K)`` (bounds of ``_assert_moments``). On a linear-Gaussian posterior, DDS's chains keep DDS's mean and
their mean's variance is the single chain's over ``K`` (ratio of sample variances within 4.5 standard errors).
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import DDIM, IndependentChains, InverseProblem, dds, karras, repeat_problem, run
from medrecon.samplers.smc import TwistedSMC, TweedieTwist
from medrecon.samplers.transitions import ddim_noise_std
from medrecon.samplers.volume import dds_3d
from operators import MatrixOperator
from tests.test_samplers_unconditional import _assert_moments
from tests.test_samplers_warm_start import _placeholder_problem, stand_in  # noqa: F401 (a fixture)

F64 = torch.float64


def _gaussian_prior(seed: int) -> GaussianDenoiser:
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))[0]
    return GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64),
                            q @ torch.diag(torch.tensor([0.05, 0.3, 1.0, 2.0], dtype=F64)) @ q.T)


def test_mean_of_k_chains_follows_the_exact_law_with_covariance_over_k():
    prior, chains, n = _gaussian_prior(3), 4, 2000
    start = torch.tensor([1.0, -0.5, 0.25, 2.0], dtype=F64)
    sigmas = karras(30, 0.002, 0.8)
    calls = []

    def estimate(problem):
        calls.append(problem.batch)
        return start.expand(problem.batch, 4)

    sampler = IndependentChains(DDIM(sigmas, eta=1.0, x_init=estimate), chains)
    out = run(sampler, _placeholder_problem(n, 4), prior, torch.Generator().manual_seed(0), progress=False)
    assert calls == [n]  # the start estimate runs once, on the original problem
    lam, vecs = prior.evals, prior.evecs
    mu, var = (start - prior.mean) @ vecs, torch.full_like(lam, float(sigmas[0]) ** 2)
    for s, s_next in itertools.pairwise(sigmas.tolist()):
        c = ddim_noise_std(s, s_next, 1.0) if s_next > 0 else 0.0
        a = (lam + s * math.sqrt(max(0.0, s_next**2 - c**2))) / (lam + s**2)
        mu, var = a * mu, a**2 * var + c**2
    _assert_moments(out.x, prior.mean + vecs @ mu, vecs @ torch.diag(var / chains) @ vecs.T)
    # the spread maps: the chains' own (population) std per coordinate, intervals inside their range
    particles = out.state.x.reshape(chains, n, 4)
    torch.testing.assert_close(out.outputs["std"], particles.std(0, unbiased=False))
    assert (out.outputs["lower"] >= particles.min(0).values - 1e-12).all()
    assert (out.outputs["upper"] <= particles.max(0).values + 1e-12).all()
    assert (out.outputs["lower"] <= out.outputs["upper"]).all()


def test_dds_chains_keep_the_mean_and_divide_the_variance_on_a_gaussian_posterior():
    prior = _gaussian_prior(0)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 4, generator=gen, dtype=F64)
    y = prior.sample(1, gen) @ a.T + 0.1 * torch.randn(1, 2, generator=gen, dtype=F64)
    n, chains = 600, 4
    problem = InverseProblem(MatrixOperator(a), y.expand(n, 2).clone(), 0.1)
    single = run(dds(20, gamma=1.0), problem, prior, torch.Generator().manual_seed(1), progress=False).x
    mean = run(IndependentChains(dds(20, gamma=1.0), chains), problem, prior, torch.Generator().manual_seed(2),
               progress=False).x
    v1, vk = single.var(0), mean.var(0)
    se = (v1 / n + vk / n).sqrt()  # standard error of the difference of the two means
    assert ((single.mean(0) - mean.mean(0)).abs() <= 4.5 * se).all()
    ratio, tol = vk / v1, 4.5 * math.sqrt(2 / (n - 1) + 2 / (n - 1))  # log-ratio of sample variances
    assert ((ratio * chains).log().abs() <= tol).all(), ratio * chains


def test_each_chain_sees_its_own_image_data_and_support():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(3, 5, generator=gen, dtype=F64)
    x_true = torch.randn(3, 5, generator=gen, dtype=F64)
    support = torch.ones(3, 5, dtype=F64)
    support[1, 4] = 0
    x_true = x_true * support
    problem = InverseProblem(MatrixOperator(a), x_true @ a.T, 0.0, support)
    prior = GaussianDenoiser(torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64))
    sampler = IndependentChains(dds(15, sigmas=karras(15, 0.002, 5.0), cg_iters=20), 3)
    out = run(sampler, problem, prior, torch.Generator().manual_seed(0), progress=False)
    particles = sampler.particles(out.state)  # (K, B, 5)
    assert particles.shape == (3, 3, 5)
    residual = particles @ a.T - problem.y  # chain k of image b against y_b
    assert float(residual.abs().max()) < 1e-8 * float(problem.y.abs().max())
    assert float(out.outputs["std"].abs().max()) > 0  # the chains differ
    torch.testing.assert_close(out.x, particles.mean(0))
    rep = repeat_problem(problem, 3)
    assert rep.y.shape == (9, 3) and rep.support.shape == (9, 5)
    torch.testing.assert_close(rep.A(torch.cat([x_true] * 3)), torch.cat([problem.y] * 3))


def test_chains_need_a_single_chain_sampler_and_two_chains():
    base = dds(5)
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match="chains must be an integer"):
            IndependentChains(base, bad)
    smc = TwistedSMC(karras(5, 0.002, 1.0), 4, TweedieTwist(), proposal="prior")
    with pytest.raises(ValueError, match="already runs particles"):
        IndependentChains(smc, 2)
    with pytest.raises(ValueError, match="couples the slices"):
        IndependentChains(dds_3d(5), 2)
    chained = IndependentChains(base, 3)
    assert chained.samples_per_image == 3 and chained.num_steps == base.num_steps


# --- job option sampler.chains -------------------------------------------------------------------------------


def test_job_averages_chains_and_records_their_spread(tmp_path, stand_in):
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec
    from tests.test_samplers_warm_start import _ct_job

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, 'start = "tv"\nchains = 3'))
    result = run_job(load_spec(job), progress=False)
    assert result.record["sampler"]["chains"] == 3
    assert result.reconstruction.shape == (2, 32, 32)
    uncertainty = result.record["uncertainty"]
    assert uncertainty["weights"] == "equal (independent chains)" and 0 <= uncertainty["coverage"] <= 1
    single = tmp_path / "one.toml"
    single.write_text(_ct_job(tmp_path / "one", 'start = "tv"\nchains = 1'))
    alone = run_job(load_spec(single), progress=False)
    assert alone.record["sampler"]["chains"] == 1 and "uncertainty" not in alone.record


def test_check_names_the_chains(tmp_path, stand_in, capsys):
    from medrecon.cli import main
    from tests.test_samplers_warm_start import _ct_job

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, 'start = "tv"\nstart_sigma = 0.3\nchains = 2'))
    assert main(["check", str(job)]) == 0
    assert "sampler dds with 4 steps x 2 chains averaged from tv at sigma 0.3 (" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_chains_are_refused_before_any_output(tmp_path, stand_in, value):
    from medrecon.errors import ConfigError
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec
    from tests.test_samplers_warm_start import _ct_job

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, f"chains = {value}"))
    with pytest.raises(ConfigError, match="sampler.chains"):
        run_job(load_spec(job), progress=False)
    assert not (tmp_path / "out").exists()
