"""The image support of a problem: the prior's estimate held at zero where no measurement sees the image
(``InverseProblem.support``, the coil maps' support in MRI jobs)."""
import torch

from medrecon import samplers
from medrecon.jobs.sampling import coil_support
from medrecon.samplers.smc import smc
from operators.mri import multicoil_mri


def _painting_denoiser(x, sigma):
    """A prior that always answers a bright frame: what a filled-frame prior paints where no data constrain it."""
    return torch.full_like(x, 0.7)


def _problem(batch=2, support=True):
    g = torch.Generator().manual_seed(0)
    smaps = torch.zeros(batch, 3, 16, 16, dtype=torch.complex64)
    smaps[..., 4:12, 3:13] = torch.randn(batch, 3, 8, 10, generator=g, dtype=torch.complex64)
    smaps[1, :, 4:12, 3:5] = 0  # the second slice's support is narrower
    mask = torch.zeros(16, dtype=torch.bool)
    mask[::2] = True
    op = multicoil_mri(smaps, mask)
    x = torch.zeros(batch, 16, 16, dtype=torch.complex64)
    x[:, 5:11, 5:11] = 0.5
    y = op(x)
    return samplers.InverseProblem(op, y, 0.01, coil_support(op) if support else None), op


def test_coil_support_is_the_pixels_some_coil_sees():
    problem, op = _problem()
    s = problem.support
    assert s.shape == (2, 16, 16) and s.dtype == torch.bool
    assert s[0, 4:12, 3:13].all() and not s[0, :4].any() and not s[0, :, 13:].any()
    assert not s[1, 4:12, 3:5].any() and s[1, 4:12, 5:13].all()
    full = multicoil_mri(torch.ones(2, 16, 16, dtype=torch.complex64), torch.ones(16, dtype=torch.bool))
    assert coil_support(full) is None
    assert coil_support(torch.nn.Identity()) is None


def test_restrict_broadcasts_over_particles_and_select_slices_it():
    problem, _ = _problem()
    x = torch.ones(2, 16, 16, dtype=torch.complex64)
    assert torch.equal(problem.restrict(x).real.bool(), problem.support)
    particles = torch.ones(5, 2, 16, 16)  # (P, B, H, W), the SMC layout
    out = problem.restrict(particles)
    assert torch.equal(out[3].bool(), problem.support)
    sub = problem.select(1, 2)
    assert sub.support.shape == (1, 16, 16) and torch.equal(sub.support[0], problem.support[1])
    bare = samplers.InverseProblem(problem.A, problem.y, 0.01)
    assert bare.restrict(x) is x


def test_dds_and_red_diff_keep_the_unseen_pixels_at_zero():
    for support in (True, False):
        problem, _ = _problem(support=support)
        outside = ~coil_support(problem.A)
        for sampler in (samplers.dds(steps=6), samplers.REDDiff(samplers.vp_linear(6))):
            x = samplers.run(sampler, problem, _painting_denoiser, torch.Generator().manual_seed(1)).x
            if support:
                assert x[outside].abs().max() < 1e-6
                assert x[~outside].abs().mean() > 0.1
            else:  # without the constraint the painted frame survives where no coil sees it
                assert x[outside].abs().mean() > 0.3


def test_smc_particles_are_held_to_the_support():
    problem, _ = _problem()
    outside = ~problem.support
    out = samplers.run(smc(particles=4, steps=6), problem, _painting_denoiser, torch.Generator().manual_seed(2))
    assert out.x[outside].abs().mean() < 0.05 < out.x[~outside].abs().mean()
