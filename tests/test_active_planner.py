"""The active-subsampling loop: with an exact Gaussian prior that is diagonal in k-space (each column's entries
have a known variance), the first choices are the columns of largest expected information gain; budgets are exact,
nothing is acquired twice, the centre stays, a seed fixes the plan, population plans share one mask, CT views and
k-space points plan the same way, and SMC particles are reweighted by new data."""
import math

import pytest
import torch

from medrecon.active import (
    KSpaceLines,
    KSpacePoints,
    ProjectionViews,
    acquisition_schedule,
    plan,
    retrospective,
)
from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import dds, karras
from medrecon.samplers.smc import smc
from operators import fft2c, ifft2c, multicoil_mri, parallel_beam, sparse_view_angles
from operators.testing import check_adjoint

N = 8
SIGMA_Y = 0.01


def kspace_diagonal_prior(column_var: torch.Tensor) -> GaussianDenoiser:
    """``x = ifft2c(z)``, ``z[r, c] ~ CN(0, column_var[c])``: a complex ``N x N`` Gaussian prior on real vectors."""
    n = 2 * N * N
    basis = torch.eye(n, dtype=torch.float64).reshape(n, N, N, 2)
    m = torch.view_as_real(ifft2c(torch.view_as_complex(basis.contiguous()))).reshape(n, n).T  # x_real = M z_real
    var = (column_var[None, :, None] / 2).expand(N, N, 2).reshape(n)
    return GaussianDenoiser(torch.zeros(n, dtype=torch.float64), m @ torch.diag(var) @ m.T)


@pytest.fixture(scope="module")
def setting():
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(N, generator=g)
    column_var = (2.0 * 0.5 ** order.to(torch.float64))  # distinct variances, random order over the columns
    prior = kspace_diagonal_prior(column_var)
    x = (torch.randn(2, 2 * N * N, dtype=torch.float64, generator=g) @ torch.linalg.cholesky(prior.cov).T)
    images = torch.view_as_complex(x.reshape(2, N, N, 2).contiguous())
    A = multicoil_mri(torch.ones(1, N, N, dtype=torch.complex128), torch.ones(N, dtype=torch.bool))
    full = A(images)
    return prior, column_var, images, A, full


def sampler(steps=12):
    return dds(steps=steps, eta=0.85, cg_iters=10, sigmas=karras(steps, 0.005, 5.0).to(torch.float64))


def start_columns(count=N):
    initial = torch.zeros(count, dtype=torch.bool)
    initial[count // 2] = True
    return initial


def test_schedules_spread_rounds_and_refuse_what_does_not_fit():
    s = acquisition_schedule(50, 22, per_round=2)
    assert s.total == 22 and len(s.steps) == 11 and s.steps[0] == 1 and s.steps[-1] == 25
    assert list(s.steps) == sorted(set(s.steps))
    assert acquisition_schedule(50, 5, per_round=2).counts == (2, 2, 1)
    with pytest.raises(ValueError, match="outside the sampler's steps"):
        acquisition_schedule(10, 3, start=0)
    with pytest.raises(ValueError, match="do not fit"):
        acquisition_schedule(10, 30, per_round=1)


def test_the_first_columns_chosen_are_those_of_largest_information_gain(setting):
    prior, column_var, _, A, full = setting
    cands = KSpaceLines(A)
    initial = start_columns()
    gain = N * torch.log1p(column_var / SIGMA_Y**2)  # EIG of a column: N independent complex entries
    gain[initial] = -math.inf
    schedule = acquisition_schedule(12, 3, per_round=3, start=3)
    result = plan(sampler(), cands, prior, torch.Generator().manual_seed(1), initial=initial,
                  acquire=retrospective(cands, full), schedule=schedule, sigma_y=SIGMA_Y, chains=16)
    best = set(gain.topk(3).indices.tolist())
    for b in range(2):
        assert set(result.order[b].tolist()) == best


def test_budgets_are_exact_nothing_is_acquired_twice_and_the_centre_stays(setting):
    prior, _, images, A, full = setting
    cands = KSpaceLines(A)
    initial = start_columns()
    schedule = acquisition_schedule(12, 4, per_round=1, start=2, stop=8)
    run = lambda seed: plan(sampler(), cands, prior, torch.Generator().manual_seed(seed), initial=initial,
                            acquire=retrospective(cands, full), schedule=schedule, sigma_y=SIGMA_Y, chains=4,
                            diversity=0.5, width=1.5)
    first, again = run(2), run(2)
    assert torch.equal(first.order, again.order) and torch.equal(first.x, again.x)  # a seed fixes the plan
    assert first.acquired.sum(-1).tolist() == [5, 5]
    assert bool(first.acquired[:, N // 2].all())
    for b in range(2):
        assert len(set(first.order[b].tolist())) == 4 and N // 2 not in first.order[b].tolist()
    assert first.nfe == 12 and len(first.rounds) == 4 and first.particles.shape == (4, 2, N, N)
    # the reconstruction used every acquired column: it agrees with the data there
    k = fft2c(first.x)
    err = (k - full[:, 0]).abs()[first.acquired[:, None, :].expand(2, N, N)]
    assert float(err.max()) < 5 * SIGMA_Y + 1e-2


def test_a_population_plan_shares_one_mask(setting):
    prior, _, _, A, full = setting
    cands = KSpaceLines(A)
    result = plan(sampler(), cands, prior, torch.Generator().manual_seed(3), initial=start_columns(),
                  acquire=retrospective(cands, full), schedule=acquisition_schedule(12, 3, per_round=1),
                  sigma_y=SIGMA_Y, chains=4, shared=True)
    assert torch.equal(result.acquired[0], result.acquired[1]) and int(result.acquired[0].sum()) == 4


def test_points_plan_with_a_two_dimensional_diversity_penalty(setting):
    prior, _, _, A, full = setting
    cands = KSpacePoints(A)
    initial = torch.zeros(N * N, dtype=torch.bool)
    initial[(N // 2) * N + N // 2] = True
    result = plan(sampler(), cands, prior, torch.Generator().manual_seed(4), initial=initial,
                  acquire=retrospective(cands, full), schedule=acquisition_schedule(12, 6, per_round=3),
                  sigma_y=SIGMA_Y, chains=4, diversity=1.0, width=1.0)
    assert result.acquired.sum(-1).tolist() == [7, 7]
    mask = cands.kspace_mask(result.acquired)
    assert mask.shape == (2, 1, N, N) and int(mask[0].sum()) == 7


def test_ct_views_plan_from_all_candidate_angles():
    g = torch.Generator().manual_seed(5)
    n = 8
    d = n * n
    base = torch.randn(d, d, generator=g, dtype=torch.float64)
    prior = GaussianDenoiser(torch.zeros(d, dtype=torch.float64), base @ base.T / d + 0.01 * torch.eye(d))
    images = (torch.randn(2, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(prior.cov).T)
    images = images.reshape(2, n, n).to(torch.float32)
    angles = sparse_view_angles(12)
    projector = parallel_beam(n, angles)
    cands = ProjectionViews(projector, torch.tensor(angles))
    initial = torch.zeros(12, dtype=torch.bool)
    initial[0] = True
    full = projector(images)
    steps = 10
    s = dds(steps=steps, cg_iters=10, sigmas=karras(steps, 0.01, 5.0))
    result = plan(s, cands, prior, g, initial=initial,
                  acquire=retrospective(cands, full), schedule=acquisition_schedule(steps, 3, per_round=1),
                  sigma_y=0.01, chains=4, diversity=0.5, width=15.0)
    assert result.acquired.sum(-1).tolist() == [4, 4] and bool(result.acquired[:, 0].all())
    op = cands.operator(result.acquired)
    check_adjoint(op, (2, n, n), torch.float32, torch.Generator().manual_seed(6))
    views = cands.indices(result.acquired)
    for b in range(2):
        direct = parallel_beam(n, [angles[i] for i in views[b].tolist()])(images[b])
        torch.testing.assert_close(op(images)[b], direct, rtol=1e-5, atol=1e-5)


def test_smc_particles_are_reweighted_by_new_data(setting):
    prior, _, _, A, full = setting
    cands = KSpaceLines(A)
    s = smc(particles=4, steps=12, sigmas=karras(12, 0.005, 5.0).to(torch.float64), sigma_data=1.0)
    result = plan(s, cands, prior, torch.Generator().manual_seed(7), initial=start_columns(),
                  acquire=retrospective(cands, full), schedule=acquisition_schedule(12, 2, per_round=1),
                  sigma_y=SIGMA_Y)
    assert result.acquired.sum(-1).tolist() == [3, 3] and result.particles.shape == (4, 2, N, N)
    assert bool(torch.isfinite(torch.view_as_real(result.x)).all())


def test_bad_plans_are_refused(setting):
    prior, _, _, A, full = setting
    cands = KSpaceLines(A)
    with pytest.raises(ValueError, match="only 7 are not acquired"):
        plan(sampler(), cands, prior, torch.Generator(), initial=start_columns(),
             acquire=retrospective(cands, full), schedule=acquisition_schedule(12, 8, per_round=2),
             sigma_y=SIGMA_Y)
    with pytest.raises(ValueError, match="outside the sampler's steps"):
        from medrecon.active import Schedule
        plan(sampler(), cands, prior, torch.Generator(), initial=start_columns(),
             acquire=retrospective(cands, full), schedule=Schedule((12,), (1,)), sigma_y=SIGMA_Y)
    with pytest.raises(ValueError, match=r"acquired must be \(B, 8\)"):
        cands.check(torch.zeros(7, dtype=torch.bool))
