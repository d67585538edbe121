"""Partial diffusion from an estimate (``DDIM(x_init=...)``, job option ``sampler.start``).

Exact checks: started from draws of the prior diffused to ``sigma_0``, the chain is the prior's own chain from
``sigma_0`` on, so a Gaussian-mixture prior's weights and moments come back (bounds as in
``test_samplers_unconditional``: 4.5 binomial / standard errors); from a fixed point, the output law of a Gaussian
prior is the exact linear-Gaussian recursion started at ``N(x_init, sigma_0^2 I)``.
"""
from __future__ import annotations

import itertools
import math
import textwrap

import pytest
import torch

from medrecon.errors import ConfigError
from medrecon.priors.gaussian import GaussianDenoiser, GaussianMixtureDenoiser
from medrecon.samplers import DDIM, InverseProblem, dds, karras, run
from medrecon.samplers.transitions import ddim_noise_std, gaussian_like
from operators.base import Identity
from tests.test_samplers_unconditional import _assert_moments

F64 = torch.float64
N = 2000


def _placeholder_problem(n: int, d: int) -> InverseProblem:
    """A problem that only fixes the sample shape (the unconditional chains below ignore its data)."""
    return InverseProblem(Identity(), torch.zeros(n, d, dtype=F64))


def test_partial_diffusion_from_prior_draws_keeps_the_mixture():
    means = torch.tensor([[-2.0, -2.0], [1.5, 1.0]], dtype=F64)
    covs = torch.stack([0.3 * torch.eye(2, dtype=F64), torch.tensor([[0.4, 0.1], [0.1, 0.2]], dtype=F64)])
    mix = GaussianMixtureDenoiser(torch.tensor([0.25, 0.75]), means, covs)
    draws = mix.sample(N, torch.Generator().manual_seed(11)).to(F64)
    sampler = DDIM(karras(60, 0.002, 1.5), x_init=lambda problem: draws)
    x = run(sampler, _placeholder_problem(N, 2), mix, torch.Generator().manual_seed(5), progress=False).x
    frac = float((mix.classify(x) == 0).double().mean())
    assert abs(frac - 0.25) <= 4.5 * math.sqrt(0.25 * 0.75 / N)
    for k in range(2):
        _assert_moments(x[mix.classify(x) == k], means[k], covs[k])


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_partial_diffusion_from_a_point_follows_the_exact_chain_law(eta):
    gen = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))[0]
    prior = GaussianDenoiser(torch.randn(4, generator=gen, dtype=F64),
                             q @ torch.diag(torch.tensor([0.05, 0.3, 1.0, 2.0], dtype=F64)) @ q.T)
    start = torch.tensor([1.0, -0.5, 0.25, 2.0], dtype=F64)
    sigmas = karras(40, 0.002, 0.8)
    sampler = DDIM(sigmas, eta=eta, x_init=lambda problem: start.expand(problem.batch, 4))
    x = run(sampler, _placeholder_problem(N, 4), prior, torch.Generator().manual_seed(0), progress=False).x
    lam, vecs = prior.evals, prior.evecs
    mu, var = (start - prior.mean) @ vecs, torch.full_like(lam, float(sigmas[0]) ** 2)
    for s, s_next in itertools.pairwise(sigmas.tolist()):
        c = ddim_noise_std(s, s_next, eta) if s_next > 0 else 0.0
        a = (lam + s * math.sqrt(max(0.0, s_next**2 - c**2))) / (lam + s**2)
        mu, var = a * mu, a**2 * var + c**2
    _assert_moments(x, prior.mean + vecs @ mu, vecs @ torch.diag(var) @ vecs.T)


def test_dds_starts_at_the_estimate_plus_sigma_0_noise():
    A = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    from operators.dense import MatrixOperator

    problem = InverseProblem(MatrixOperator(A), torch.randn(4, 3, dtype=F64, generator=torch.Generator()), 0.1)
    estimate = torch.arange(20, dtype=F64).reshape(4, 5) / 10
    sampler = dds(10, sigmas=karras(10, 0.002, 0.5), x_init=lambda p: estimate)
    prior = GaussianDenoiser(torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64))
    state = sampler.init(problem, prior, torch.Generator().manual_seed(7))
    noise = gaussian_like(estimate, torch.Generator().manual_seed(7))
    torch.testing.assert_close(state.x, estimate + float(sampler.sigmas[0]) * noise)
    with pytest.raises(ValueError, match="x_init gave shape"):
        dds(10, x_init=lambda p: estimate[:2]).init(problem, prior, torch.Generator())


# --- job option sampler.start ---------------------------------------------------------------------------------


def _ct_job(tmp_path, sampler: str) -> str:
    return textwrap.dedent(f"""\
        [data]
        kind = "ct_phantom"
        phantom = "shepp_logan"
        size = 32
        slices = 2

        [operator]
        kind = "parallel_beam_ct"
        views = 8
        noise = 0.01

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 4
        {sampler}

        [run]
        scale = 0.0384
        baselines = ["tv"]
        outputs = []
        out = "{tmp_path / "out"}"
        """)


@pytest.fixture
def stand_in():
    from tests.test_jobs_support import stand_in_registered

    with stand_in_registered():
        yield


def test_job_starts_dds_from_tv(tmp_path, stand_in):
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, 'start = "tv"\nstart_sigma = 0.3'))
    result = run_job(load_spec(job), progress=False)
    settings = result.record["sampler"]
    assert (settings["start"], settings["start_sigma"]) == ("tv", 0.3)
    assert result.reconstruction.shape == (2, 32, 32)
    assert result.metrics["dds"]["psnr"] > 0.0


def test_check_names_the_start(tmp_path, stand_in, capsys):
    from medrecon.cli import main

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, 'start = "tv"\nstart_sigma = 0.3'))
    assert main(["check", str(job)]) == 0
    assert "sampler dds with 4 steps from tv at sigma 0.3 (" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, message", [
    ('start = "l1_wavelet"', "sampler.start: 'l1_wavelet' is a MRI baseline"),
    ('start = "sirt"', "sampler.start = 'sirt': not 'noise' or a baseline"),
    ('start = "tv_3d"', "needs every slice of the volume"),
    ('start = "tv"\ngrid = "vp"', 'grid = "karras"'),
    ('start = "tv"\nstart_sigma = 500.0', "sampler.start_sigma = 500: must lie in the prior's noise range"),
])
def test_bad_start_is_refused_before_any_output(tmp_path, stand_in, option, message):
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec

    job = tmp_path / "ct.toml"
    job.write_text(_ct_job(tmp_path, option))
    with pytest.raises(ConfigError, match=message):
        run_job(load_spec(job), progress=False)
    assert not (tmp_path / "out").exists()


def test_ct_dds_starts_from_tv_by_default_and_mri_from_noise():
    from medrecon import defaults as D
    from medrecon.jobs.sampling import dds as dds_component

    ct = dds_component({"modality": "ct"}, steps=8)
    assert ct.settings["start"] == "tv" and ct.sampler.base.x_init is not None
    assert ct.settings["chains"] == 2 and ct.sampler.chains == 2
    assert ct.sampler.sigmas[0] == pytest.approx(D.dds_for("ct").start_sigma)
    assert dds_component({"modality": "ct"}).settings["steps"] == 25
    assert dds_component({"modality": "mri"}).settings["steps"] == 50
    mri = dds_component({"modality": "mri"}, steps=8)
    assert mri.settings["start"] == "noise" and mri.sampler.x_init is None and mri.settings["start_sigma"] is None
    assert mri.sampler.sigmas[0] == pytest.approx(80.0)
    cold = dds_component({"modality": "ct"}, steps=8, start="noise", chains=1)
    assert cold.sampler.x_init is None and cold.sampler.sigmas[0] == pytest.approx(80.0)
