"""Joint two-prior sampling (dehazing) against the closed form: two independent Gaussian priors and the linear
haze model ``y = x + gamma h + sigma_y n`` have a Gaussian joint posterior; the stacked product denoiser is the
exact denoiser of the block-diagonal joint prior; the companded data step descends the paper's objective; and
DDS / DPS complete missing scan lines with the ultrasound operators unchanged."""
import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.priors.stacked import StackedDenoiser
from medrecon.samplers import DPS, InverseProblem, KrylovCG, dds, karras, run
from medrecon.samplers.dehaze import CompandedMixtureGradient, JointDehazing, joint_dehazing
from operators.ultrasound import ScanLines, haze_mixture, mu_law_compress, mu_law_expand

F64 = torch.float64
GAMMA = 0.6
N = 300


def _random_cov(gen, scales):
    q = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))[0]
    return q @ torch.diag(torch.tensor(scales, dtype=F64)) @ q.T


@pytest.fixture(scope="module")
def two_gaussians():
    gen = torch.Generator().manual_seed(0)
    tissue = GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64), _random_cov(gen, [0.1, 0.5, 1.0, 2.0]))
    haze = GaussianDenoiser(0.5 * torch.randn(4, generator=gen, dtype=F64), _random_cov(gen, [0.05, 0.1, 0.2, 0.4]))
    joint = GaussianDenoiser(torch.cat([tissue.mean, haze.mean]), torch.block_diag(tissue.cov, haze.cov))
    a = torch.cat([torch.eye(4, dtype=F64), GAMMA * torch.eye(4, dtype=F64)], 1)
    sigma_y = 0.1
    truth = joint.sample(1, gen)
    y = truth @ a.T + sigma_y * torch.randn(1, 4, generator=gen, dtype=F64)
    return tissue, haze, joint, a, y, sigma_y


def test_stacked_denoiser_is_the_block_diagonal_joint_denoiser(two_gaussians):
    tissue, haze, joint, *_ = two_gaussians
    x = torch.randn(5, 2, 2, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.1, 0.3, 1.0, 3.0, 10.0], dtype=F64)
    stacked = StackedDenoiser([tissue, haze])(x, sigma)
    torch.testing.assert_close(stacked, joint(x.reshape(5, 8), sigma).reshape(5, 2, 2, 2))
    with pytest.raises(ValueError, match="2 sources"):
        StackedDenoiser([tissue, haze])(torch.zeros(1, 3, 2, 2), 1.0)


def test_joint_sampler_mean_is_near_the_closed_form_joint_posterior(two_gaussians):
    tissue, haze, joint, a, y, sigma_y = two_gaussians
    post = joint.posterior(a, y, sigma_y)
    problem = InverseProblem(haze_mixture(GAMMA), y.reshape(1, 2, 2).expand(N, 2, 2).clone(), sigma_y)
    sampler = JointDehazing(karras(50, 0.002, 20.0), KrylovCG(5, gamma=1.0), eta=0.85, noise="dds", start="noise")
    x = run(sampler, problem, StackedDenoiser([tissue, haze]), torch.Generator().manual_seed(2), progress=False).x
    assert x.shape == (N, 2, 2, 2)
    flat = x.reshape(N, 8)
    offset = ((flat.mean(0) - post.mean[0]) / post.cov.diag().sqrt()).abs()
    assert (offset <= 0.6).all(), offset
    prior_offset = ((joint.mean - post.mean[0]) / post.cov.diag().sqrt()).abs()
    assert float(prior_offset.max()) > 1.5  # the data moved the answer far from the prior
    residual = (flat @ a.T - y).norm(dim=1).mean()
    assert float(residual) < 0.15


def test_mixture_gradient_without_companding_is_a_landweber_step(two_gaussians):
    *_, y, _ = two_gaussians
    problem = InverseProblem(haze_mixture(GAMMA), y.reshape(1, 2, 2), 0.1)
    z = 0.1 * torch.randn(1, 2, 2, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    out = CompandedMixtureGradient((0.3, 0.2), iters=1, mu=None)(z, z, 1.0, problem)
    grad = problem.A.adjoint(problem.A(z) - problem.y)
    expected = (z - torch.tensor([0.3, 0.2], dtype=F64).reshape(2, 1, 1) * grad).clamp(-1, 1)
    torch.testing.assert_close(out, expected)


def test_companded_gradient_descends_the_paper_objective():
    gen = torch.Generator().manual_seed(4)
    x, h = (0.8 * torch.rand(2, 1, 8, 8, generator=gen, dtype=F64)).unbind(0)
    problem = InverseProblem(haze_mixture(GAMMA), x + GAMMA * h, 0.0)
    dc = CompandedMixtureGradient((0.2, 0.2), iters=20)
    z = 0.01 * torch.randn(1, 2, 8, 8, generator=gen, dtype=F64)
    before = float(dc.loss(z, problem))
    after = float(dc.loss(dc(z, z, 0.1, problem), problem))
    assert after < 0.1 * before
    truth = mu_law_compress(torch.stack([x, h], 1))
    assert float(dc.loss(truth, problem)) < 1e-20
    torch.testing.assert_close(mu_law_expand(truth), torch.stack([x, h], 1))


def test_dehazing_starts_from_the_measurement_and_is_reproducible(two_gaussians):
    tissue, haze, *_ = two_gaussians
    y = 0.3 * torch.randn(3, 2, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    problem = InverseProblem(haze_mixture(GAMMA), y, 0.0)
    sampler = joint_dehazing(steps=8, sigma_start=0.3)
    denoiser = StackedDenoiser([tissue, haze])
    state = sampler.init(problem, denoiser, torch.Generator().manual_seed(6))
    centred = state.x - mu_law_compress(y).unsqueeze(1)
    assert abs(float(centred.std()) - 0.3) < 0.15
    first = run(sampler, problem, denoiser, torch.Generator().manual_seed(7), progress=False).x
    again = run(sampler, problem, denoiser, torch.Generator().manual_seed(7), progress=False).x
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert float(first.abs().max()) <= 1.0


@pytest.mark.parametrize("method", ["dds", "dps"])
def test_scan_line_completion_with_unchanged_samplers(method):
    """A Gaussian prior over 8x8 frames with strong lateral correlation; half the lines measured. DDS and DPS
    keep the measured lines and fill the others closer to the truth than zero filling."""
    gen = torch.Generator().manual_seed(8)
    lat = torch.arange(8, dtype=F64)
    cov_lat = torch.exp(-0.5 * ((lat[:, None] - lat[None]) / 2.0) ** 2)
    cov = torch.kron(torch.eye(8, dtype=F64), cov_lat) + 1e-4 * torch.eye(64, dtype=F64)
    prior = GaussianDenoiser(torch.zeros(64, dtype=F64), cov)
    truth = prior.sample(4, gen).reshape(4, 8, 8)
    A = ScanLines([0, 2, 4, 6], 8)
    problem = InverseProblem(A, A(truth), 0.01)
    sampler = (dds(30, eta=0.0, cg_iters=5, gamma=0.0) if method == "dds"
               else DPS(karras(60, 0.002, 20.0), zeta=1.0, eta=0.0))
    x = run(sampler, problem, prior, torch.Generator().manual_seed(9), progress=False).x
    missing = ~A.mask
    err = (x - truth)[..., missing].pow(2).mean()
    assert float(err) < 0.3 * float(truth[..., missing].pow(2).mean())
    tolerance = 0.02 if method == "dds" else 0.1  # DDS solves the normal equations; DPS follows a gradient
    assert float((A(x) - A(truth)).abs().mean()) < tolerance
