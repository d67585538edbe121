"""SMC samplers against closed forms: exact Gaussian-mixture denoisers and linear-Gaussian measurements.

Every case runs ``B`` independent replicas of one problem (the batch), each with ``P`` particles, so the spread
of the replicas' weighted means gives an honest standard error (it includes the correlation that resampling
creates). Bounds:

- weighted mean within ``Z = 4.5`` replica standard errors per coordinate (plus the step-count bias of the
  model's own chain, ``0.05`` posterior sd);
- weighted variance of the pooled replicas / exact posterior variance within ``[0.8, 1.25]`` per coordinate
  (d <= 32); for d = 64 each coordinate within ``Z`` replica standard errors + 10 % and the mean ratio within
  10 % (64 coordinates of a 4096-particle ensemble spread by about +-20 % from Monte Carlo error alone);
- mixture weight (weighted mass classified into component 0) within ``Z`` binomial standard errors
  ``sqrt(w (1 - w) / B)`` of the replica means plus 0.05;
- sliced W2 between the resampled particles and an exact sample of the same size at most 1.5x the mean
  distance between two exact samples of that size (+ the same chain bias);
- the error of the weighted mean falls with ``P`` (64 -> 1024: at least a factor 2 of the ideal 4).
"""
import math

import pytest
import torch

from medrecon.bench.posterior import exact_draws, mixture_case, posterior_moments, prior_sigma_data, sliced_w2
from medrecon.priors.gaussian import GaussianDenoiser, GaussianMixtureDenoiser
from medrecon.samplers import InverseProblem, karras, run
from medrecon.samplers import smc as S
from medrecon.samplers.transitions import GaussianStep, ddim_transition, draw, log_density
from operators import MatrixOperator

F64 = torch.float64
Z = 4.5
SIGMA_Y = 0.05  # the cases' noise level (medrecon.bench.posterior.SIGMA_Y)
STEPS = 200
GRID = karras(STEPS, 0.002, 80.0)


def _run(sampler, prior, a, y, replicas, seed=1):
    problem = InverseProblem(MatrixOperator(a), y.expand(replicas, -1).clone(), SIGMA_Y)
    result = run(sampler, problem, prior, torch.Generator().manual_seed(seed), progress=False)
    return result


def _check_posterior(result, prior, post, a, fixed_variance_band=True):
    state = result.state
    w = torch.softmax(state.log_weights, 0)  # (P, B)
    means = (w[..., None] * state.x).sum(0)  # (B, d)
    mean, var = posterior_moments(post)
    sd = var.sqrt()
    replicas = means.shape[0]
    se = means.std(0) / math.sqrt(replicas)
    err = (means.mean(0) - mean).abs()
    assert (err <= Z * se + 0.05 * sd).all(), ((err / se).max().item(), (err / sd).max().item())
    torch.testing.assert_close(result.x, means)
    per_replica = (w[..., None] * (state.x - means.mean(0)) ** 2).sum(0)  # (B, d)
    ratio = per_replica.mean(0) / var  # all replicas' particles pooled
    if fixed_variance_band:
        assert float(ratio.min()) >= 0.8 and float(ratio.max()) <= 1.25, ratio.tolist()
    else:  # many coordinates: each within Z replica standard errors (+ 10 %), their mean within 10 %
        se_ratio = per_replica.std(0) / math.sqrt(replicas) / var
        assert ((ratio - 1).abs() <= Z * se_ratio + 0.1).all(), ratio.tolist()
        assert abs(float(ratio.mean()) - 1) <= 0.1, float(ratio.mean())
    labels = prior.classify(state.x.reshape(-1, state.x.shape[-1])).reshape(state.x.shape[:2])
    mass = (w * (labels == 0)).sum(0)  # (B,)
    w0 = float(post.weights[0, 0])
    assert abs(float(mass.mean()) - w0) <= Z * math.sqrt(w0 * (1 - w0) / replicas) + 0.05, (mass.mean(), w0)
    g = torch.Generator().manual_seed(7)
    idx = S.systematic_indices(state.log_weights, g)
    particles = S.gather_particles(state.x, idx).reshape(-1, state.x.shape[-1])
    directions = torch.randn(64, particles.shape[1], generator=g, dtype=F64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    reference = exact_draws(post, particles.shape[0], g)
    between = sum(sliced_w2(exact_draws(post, particles.shape[0], g), reference, directions) for _ in range(4)) / 4
    assert sliced_w2(particles, reference, directions) <= 1.5 * between + 0.05 * float(sd.mean())


CASES = {"equal modes d8": (8, 4, 0.5, 0), "unequal modes d32": (32, 16, 0.3, 1), "one mode d64": (64, 32, 1.0, 2)}
FIXED_BAND_UP_TO = 32  # above this dimension the per-coordinate variance band comes from the replicas


@pytest.fixture(scope="module", params=list(CASES))
def mixture(request):
    return mixture_case(*CASES[request.param])


def test_the_cases_are_what_they_claim(mixture):
    prior, _, _, post = mixture
    w0 = float(post.weights[0, 0])
    if len(prior.components) == 1:
        return
    assert 0.25 <= w0 <= 0.75  # both modes carry mass
    gap = (post.means[0, 0] - post.means[0, 1]).norm()
    spread = post.covs[0].diag().max().sqrt()
    assert float(gap) > 6 * float(spread)  # well separated


@pytest.mark.parametrize("make", [
    pytest.param(lambda sd: S.smc(256, sigmas=GRID, sigma_data=sd), id="smc"),
    pytest.param(lambda sd: S.tds(256, sigmas=GRID, sigma_data=sd), id="tds"),
])
def test_smc_reaches_the_exact_mixture_posterior(mixture, make):
    prior, a, y, post = mixture
    result = _run(make(prior_sigma_data(prior)), prior, a, y, replicas=16)
    _check_posterior(result, prior, post, a, fixed_variance_band=a.shape[1] <= FIXED_BAND_UP_TO)
    assert result.outputs["ess"].shape == (16, STEPS + 1)
    assert result.outputs["std"].shape == (16, a.shape[1])


def test_afdps_ode_reaches_the_exact_posterior_in_low_dimension():
    """AFDPS (ODE transport + Langevin corrector, exact Gaussian start) on a single-mode case."""
    g = torch.Generator().manual_seed(3)
    d = 4
    base = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
    prior = GaussianDenoiser(0.3 * torch.randn(d, generator=g, dtype=F64), 0.3 * base @ base.T + 0.1 * torch.eye(d))
    a = torch.randn(2, d, generator=g, dtype=F64) / math.sqrt(d)
    y = prior.sample(1, g) @ a.T + SIGMA_Y * torch.randn(1, 2, generator=g, dtype=F64)
    post = prior.posterior(a, y, SIGMA_Y)
    result = _run(S.afdps(256, sigmas=GRID, corrector_steps=3), prior, a, y, replicas=8)
    state = result.state
    w = torch.softmax(state.log_weights, 0)
    means = (w[..., None] * state.x).sum(0)
    sd = post.cov.diag().sqrt()
    se = means.std(0) / math.sqrt(8)
    assert ((means.mean(0) - post.mean[0]).abs() <= Z * se + 0.05 * sd).all()
    ratio = (w[..., None] * (state.x - means.mean(0)) ** 2).sum(0).mean(0) / post.cov.diag()
    assert float(ratio.min()) >= 0.8 and float(ratio.max()) <= 1.25, ratio.tolist()


def test_the_error_falls_with_the_particle_count():
    prior, a, y, post = mixture_case(8, 4, 0.3, 2)
    mean, var = posterior_moments(post)
    errors = {}
    for p in (16, 256):
        result = _run(S.smc(p, sigmas=karras(100, 0.002, 80.0)), prior, a, y, replicas=16, seed=5)
        errors[p] = float((((result.x - mean) / var.sqrt()) ** 2).mean().sqrt())
    assert errors[256] <= errors[16] / 2, errors  # ideal: a factor 4


def test_every_particle_count_and_threshold_is_validated():
    twist = S.MeasurementTwist()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="particles"):
            S.TwistedSMC(GRID, bad, twist)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ess_threshold"):
            S.TwistedSMC(GRID, 8, twist, ess_threshold=bad)
    with pytest.raises(ValueError, match="deterministic"):
        S.TwistedSMC(GRID, 8, twist, eta=0.0)
    with pytest.raises(ValueError, match="Gaussian"):
        S.TwistedSMC(GRID, 8, S.TweedieTwist(), "conjugate")
    prior = GaussianDenoiser(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    problem = InverseProblem(MatrixOperator(torch.eye(2, dtype=F64)), torch.zeros(1, 2, dtype=F64), 0.0)
    with pytest.raises(ValueError, match="sigma_y"):
        S.smc(4, sigmas=GRID).init(problem, prior, torch.Generator())


def test_one_images_particles_are_never_split_across_chunks():
    prior = GaussianDenoiser(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))
    a = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    problem = InverseProblem(MatrixOperator(a), y, 0.1)
    sizes = []

    class Counting(torch.nn.Module):
        def forward(self, x, sigma):
            sizes.append(x.shape[0])
            return prior(x, sigma)

    result = run(S.smc(8, sigmas=karras(6, 0.01, 10.0)), problem, Counting(), torch.Generator().manual_seed(2),
                 max_batch=20, progress=False)
    assert set(sizes) <= {16, 8} and 16 in sizes  # 2 images x 8 particles per chunk, then the last image
    assert result.x.shape == (5, 3) and result.outputs["ess"].shape == (5, 7)
    assert result.outputs["resamples"].shape == (5,)


def test_a_resumed_smc_run_is_bit_identical(tmp_path):
    prior = GaussianMixtureDenoiser(torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[1.0, 0.0], [-1.0, 0.0]],
                                    dtype=F64), 0.2 * torch.eye(2, dtype=F64).expand(2, 2, 2).clone())
    problem = InverseProblem(MatrixOperator(torch.tensor([[0.0, 1.0]], dtype=F64)), torch.zeros(2, 1, dtype=F64),
                             0.1)
    sampler = S.smc(16, sigmas=karras(12, 0.01, 20.0), ess_threshold=0.9)
    full = run(sampler, problem, prior, torch.Generator().manual_seed(4), progress=False)

    class Stop(Exception):
        pass

    def stop(state, info):
        if state.step == 5:
            raise Stop

    with pytest.raises(Stop):
        run(sampler, problem, prior, torch.Generator().manual_seed(4), progress=False, callbacks=[stop],
            checkpoint_dir=tmp_path, checkpoint_every=1)
    resumed = run(sampler, problem, prior, torch.Generator().manual_seed(99), progress=False,
                  checkpoint_dir=tmp_path, checkpoint_every=1)
    assert torch.equal(full.x, resumed.x)
    for key in full.outputs:
        assert torch.equal(full.outputs[key], resumed.outputs[key]), key
    assert float(full.outputs["resamples"].sum()) > 0  # the resampling state was part of the checkpoint


def test_systematic_resampling_keeps_each_count_within_one_of_its_expectation():
    g = torch.Generator().manual_seed(0)
    log_w = torch.randn(50, 4, generator=g, dtype=F64) * 2
    w = torch.softmax(log_w, 0)
    for _ in range(20):
        idx = S.systematic_indices(log_w, g)
        for b in range(4):
            counts = torch.bincount(idx[:, b], minlength=50).to(F64)
            assert ((counts - 50 * w[:, b]).abs() < 1 + 1e-9).all()


def test_ess_and_the_weighted_summary_match_direct_formulas():
    g = torch.Generator().manual_seed(1)
    log_w = torch.randn(40, 3, generator=g, dtype=F64)
    x = torch.randn(40, 3, 5, generator=g, dtype=F64)
    w = torch.softmax(log_w, 0)
    torch.testing.assert_close(S.ess_fraction(log_w), 1 / (40 * (w**2).sum(0)))
    torch.testing.assert_close(S.ess_fraction(torch.zeros(7, 2, dtype=F64)), torch.ones(2, dtype=F64))
    summary = S.weighted_summary(x, log_w, level=0.8)
    mean = (w[..., None] * x).sum(0)
    torch.testing.assert_close(summary["mean"], mean)
    torch.testing.assert_close(summary["std"], ((w[..., None] * (x - mean) ** 2).sum(0)).sqrt())
    for b in range(3):
        for j in range(5):
            order = x[:, b, j].argsort()
            cum = w[order, b].cumsum(0)
            lo = x[order, b, j][int((cum >= 0.1).nonzero()[0])]
            hi = x[order, b, j][int((cum >= 0.9).nonzero()[0])]
            assert float(summary["lower"][b, j]) == float(lo) and float(summary["upper"][b, j]) == float(hi)
    complex_summary = S.weighted_summary(torch.polar(x.abs() + 1, x), log_w)
    assert complex_summary["mean"].is_complex() and not complex_summary["std"].is_complex()


def test_transitions_expose_their_density():
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(3, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    step = ddim_transition(x0, eps, 2.0, 1.0, 1.0)
    assert step.std == pytest.approx(1.0 * math.sqrt(1 - 0.25))
    x = draw(step, g)
    ref = torch.distributions.Normal(step.mean, step.std).log_prob(x).sum(-1)
    torch.testing.assert_close(log_density(step, x), ref)
    z = torch.complex(x, x.flip(-1))
    refc = torch.distributions.Normal(torch.zeros(3, 8, dtype=F64), 0.5).log_prob(
        torch.view_as_real(z - 0).reshape(3, 8)).sum(-1)
    torch.testing.assert_close(log_density(GaussianStep(torch.zeros_like(z), 0.5), z), refc)
    with pytest.raises(ValueError, match="deterministic"):
        log_density(ddim_transition(x0, eps, 2.0, 1.0, 0.0), x)


@pytest.mark.parametrize("complex_", [False, True])
def test_log_likelihood_with_extra_variance_matches_the_dense_gaussian(complex_):
    g = torch.Generator().manual_seed(3)
    dtype = torch.complex128 if complex_ else F64
    a = torch.randn(3, 5, generator=g, dtype=dtype)
    x = torch.randn(2, 4, 5, generator=g, dtype=dtype)  # (P, B, n) particles
    y = torch.randn(4, 3, generator=g, dtype=dtype)
    problem = InverseProblem(MatrixOperator(a), y, 0.3)
    cov = 0.09 * torch.eye(3, dtype=dtype) + 0.7 * a @ a.mH
    r = y - x @ a.mT
    ref = -0.5 * torch.einsum("pbi,ij,pbj->pb", r.conj(), torch.linalg.inv(cov), r).real
    torch.testing.assert_close(problem.log_likelihood(x, extra_var=0.7), ref)
    torch.testing.assert_close(problem.log_likelihood(x), -0.5 * (r.abs() ** 2).sum(-1) / 0.09)


def test_the_tempering_exponent_is_the_largest_that_keeps_the_ess_floor():
    g = torch.Generator().manual_seed(5)
    increment = torch.randn(32, 5, generator=g, dtype=F64) * torch.tensor([0.01, 50.0, 2.0, 8.0, 400.0], dtype=F64)
    floor = 0.6
    alpha = S.tempering_exponent(increment, floor)
    assert float(alpha[0]) == 1.0  # a small increment is kept whole: the exact weights
    assert bool((S.ess_fraction(alpha[None] * increment) >= floor - 1e-9).all())
    tempered = alpha < 1
    assert int(tempered.sum()) == 4
    assert bool((S.ess_fraction((alpha + 1e-6)[None] * increment)[tempered] < floor).all())  # the largest
    assert bool((S.tempering_exponent(increment, 1.0)[tempered] == 0).all())
    assert bool((S.tempering_exponent(increment, 0.0) == 1).all())


def test_an_ess_floor_keeps_the_exact_sampler_where_the_weights_allow_and_guided_chains_where_they_do_not():
    prior = GaussianMixtureDenoiser(torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[1.0, 0.0], [-1.0, 0.0]],
                                    dtype=F64), 0.2 * torch.eye(2, dtype=F64).expand(2, 2, 2).clone())
    problem = InverseProblem(MatrixOperator(torch.tensor([[0.0, 1.0]], dtype=F64)), torch.zeros(3, 1, dtype=F64),
                             0.1)
    grid = karras(12, 0.01, 20.0)

    def sample(**options):
        return run(S.smc(16, sigmas=grid, ess_threshold=0.9, **options), problem, prior,
                   torch.Generator().manual_seed(4), progress=False)

    exact = sample()
    assert torch.equal(exact.outputs["weight_exponent"], torch.ones(3, 13, dtype=F64))
    barely = sample(ess_floor=1e-12)  # never binding: bit-identical to the exact weights
    assert torch.equal(barely.x, exact.x) and torch.equal(barely.outputs["std"], exact.outputs["std"])
    chains = sample(ess_floor=1.0)  # the weights never move: independent guided chains, never resampled
    assert torch.equal(chains.state.log_weights, torch.zeros_like(chains.state.log_weights))
    assert float(chains.outputs["resamples"].sum()) == 0 and float(chains.outputs["weight_exponent"].max()) < 1
    middle = sample(ess_floor=0.95)
    exponent = middle.outputs["weight_exponent"]
    assert 0 < float(exponent.min()) < 1 and float(exponent.max()) == 1.0  # tempered at some steps only
    assert float(middle.outputs["resamples"].sum()) > 0  # the weights still accumulate and resample
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="ess_floor"):
            S.smc(4, sigmas=grid, ess_floor=bad)
