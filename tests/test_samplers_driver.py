"""The ``run`` driver and every sampler's plumbing: determinism, checkpoint/resume, chunking, timing, autograd
mode, callbacks, complex (MRI-like) and real (CT-like) operators."""
import pytest
import torch

from medrecon.errors import InputError
from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import (
    DDIM,
    DPS,
    DPMSolverPP2M,
    Heun,
    InverseProblem,
    PredictorCorrector,
    Projection,
    REDDiff,
    dds,
    karras,
    log_uniform,
    run,
    vp_linear,
)
from operators import LinearOperator, MatrixOperator

F64 = torch.float64


class MaskedFFT(LinearOperator):
    """Single-coil Cartesian MRI on ``(B, H, W)`` complex images: orthonormal 2D FFT, then a column mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x):
        k = torch.fft.fft2(x, norm="ortho")
        return torch.where(self.mask, k, torch.zeros((), dtype=k.dtype))

    def adjoint(self, y):
        return torch.fft.ifft2(torch.where(self.mask, y, torch.zeros((), dtype=y.dtype)), norm="ortho")


def smooth_prior(pixels: int, complex_: bool) -> GaussianDenoiser:
    """Gaussian prior over ``pixels`` x ``pixels`` images with a squared-exponential covariance (2 real components
    per pixel when complex)."""
    g = torch.arange(pixels, dtype=F64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([yy.flatten(), xx.flatten()], -1)
    cov = torch.exp(-torch.cdist(pts, pts) ** 2 / 8.0) + 1e-3 * torch.eye(pixels**2, dtype=F64)
    if complex_:
        big = torch.zeros(2 * pixels**2, 2 * pixels**2, dtype=F64)
        big[0::2, 0::2] = cov
        big[1::2, 1::2] = 0.5 * cov
        cov = big
    return GaussianDenoiser(0.1 * torch.ones(cov.shape[0], dtype=F64), cov)


def mri_problem(batch=3, pixels=8, dtype=torch.complex128, gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    mask = torch.zeros(pixels, pixels, dtype=torch.bool)
    mask[:, ::2] = True
    mask[:, :2] = True
    op = MaskedFFT(mask)
    x = torch.randn(batch, pixels, pixels, generator=gen, dtype=dtype)
    return InverseProblem(op, op(x), 0.05)


def ct_problem(batch=3, pixels=8, dtype=F64, gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    a = torch.randn(pixels * pixels // 2, pixels * pixels, generator=gen, dtype=dtype) / pixels

    class Flat(LinearOperator):  # image (B, H, W) -> "sinogram" (B, m)
        def __init__(self):
            super().__init__()
            self.mat = MatrixOperator(a)

        def forward(self, x):
            return self.mat(x.flatten(-2))

        def adjoint(self, y):
            return self.mat.adjoint(y).unflatten(-1, (pixels, pixels))

    op = Flat()
    return InverseProblem(op, op(torch.randn(batch, pixels, pixels, generator=gen, dtype=dtype)), 0.05)


SAMPLERS = {
    "dds": lambda: dds(8, eta=0.85, cg_iters=3),
    "dds-noiseless": lambda: dds(8, eta=0.5, cg_iters=3, gamma=0.0),
    "ddim-projection": lambda: DDIM(vp_linear(8), eta=0.85, noise="dds", dc=Projection(iters=5)),
    "dps": lambda: DPS(vp_linear(8), zeta=0.5),
    "mcg": lambda: DPS(vp_linear(8), zeta=0.5, mcg=True, projection=Projection(iters=5)),
    "pc": lambda: PredictorCorrector(log_uniform(6, 0.01, 50), dc=Projection(iters=5)),
    "reddiff": lambda: REDDiff(steps=8, lr=0.05),
    "reddiff-cg": lambda: REDDiff(steps=8, lr=0.05, weighting="sqrt", init="cg", init_cg_iters=4),
}
PRIOR_ONLY = {
    "ddim": lambda: DDIM(karras(6), eta=0.5),
    "heun": lambda: Heun(karras(5)),
    "dpmpp2m": lambda: DPMSolverPP2M(karras(6)),
}


@pytest.fixture(scope="module")
def priors():
    return {True: smooth_prior(8, True), False: smooth_prior(8, False)}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("modality", ["mri", "ct"])
def test_same_seed_same_result_on_complex_and_real_operators(name, modality, priors):
    problem = mri_problem() if modality == "mri" else ct_problem()
    prior = priors[modality == "mri"]
    outs = [run(SAMPLERS[name](), problem, prior, torch.Generator().manual_seed(3), progress=False).x
            for _ in range(2)]
    assert outs[0].shape == problem.adjoint_y.shape and outs[0].dtype == problem.adjoint_y.dtype
    assert torch.isfinite(torch.view_as_real(outs[0]) if outs[0].is_complex() else outs[0]).all()
    assert torch.equal(outs[0], outs[1])
    other = run(SAMPLERS[name](), problem, prior, torch.Generator().manual_seed(4), progress=False).x
    if name not in ("dds-noiseless",):
        assert not torch.equal(outs[0], other)


@pytest.mark.parametrize("name", sorted(PRIOR_ONLY))
def test_prior_only_samplers_deterministic_given_seed(name, priors):
    outs = [run(PRIOR_ONLY[name](), None, priors[False], torch.Generator().manual_seed(0), shape=(2, 8, 8),
                dtype=torch.float32, progress=False).x for _ in range(2)]
    assert outs[0].dtype == torch.float32 and outs[0].shape == (2, 8, 8)
    assert torch.equal(outs[0], outs[1])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["dds", "dps", "reddiff", "pc"])
def test_checkpoint_resume_is_bit_identical(name, priors, tmp_path):
    problem = mri_problem()
    prior = priors[True]
    full = run(SAMPLERS[name](), problem, prior, torch.Generator().manual_seed(9), progress=False).x

    def stop_after_five(state, info):
        if state.step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(SAMPLERS[name](), problem, prior, torch.Generator().manual_seed(9), progress=False,
            callbacks=[stop_after_five], checkpoint_dir=tmp_path, checkpoint_every=2)
    assert (tmp_path / "chunk_0" / "state.json").exists()
    seen = []
    resumed = run(SAMPLERS[name](), problem, prior, torch.Generator().manual_seed(12345), progress=False,
                  callbacks=[lambda s, i: seen.append(i.step)], checkpoint_dir=tmp_path, checkpoint_every=2)
    assert seen[0] == 4  # the checkpoint after step 4 was the last one written
    assert torch.equal(full, resumed.x)


def test_kill_between_the_two_checkpoint_files_resumes_from_the_tensors_step(priors, tmp_path):
    """``state.pt`` is replaced before ``state.json``: a kill between the two leaves a newer tensor file beside
    the older record, and the resume must continue from the tensors' step (it gave other bytes before)."""
    import json

    problem = mri_problem()
    prior = priors[True]
    full = run(dds(8), problem, prior, torch.Generator().manual_seed(9), progress=False).x
    records = []

    def keep_record(state, info):
        path = tmp_path / "chunk_0" / "state.json"
        if path.exists():
            records.append(path.read_text())
        if state.step == 6:  # callbacks run before the step's checkpoint: step 5's is the last one written
            raise Interrupt

    with pytest.raises(Interrupt):
        run(dds(8), problem, prior, torch.Generator().manual_seed(9), progress=False, callbacks=[keep_record],
            checkpoint_dir=tmp_path, checkpoint_every=1)
    (tmp_path / "chunk_0" / "state.json").write_text(records[-2])  # the record of step 4 beside step 5's tensors
    assert json.loads(records[-2])["step"] == 4
    seen = []
    resumed = run(dds(8), problem, prior, torch.Generator().manual_seed(1), progress=False,
                  callbacks=[lambda s, i: seen.append(i.step)], checkpoint_dir=tmp_path, checkpoint_every=1)
    assert seen[0] == 5
    assert torch.equal(full, resumed.x)


def test_prior_only_resume_restores_aux(priors, tmp_path):
    prior = priors[False]
    kwargs = {"shape": (2, 8, 8), "dtype": F64, "progress": False}
    full = run(DPMSolverPP2M(karras(6)), None, prior, torch.Generator().manual_seed(1), **kwargs).x

    def stop(state, info):
        if state.step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(DPMSolverPP2M(karras(6)), None, prior, torch.Generator().manual_seed(1), callbacks=[stop],
            checkpoint_dir=tmp_path, checkpoint_every=1, **kwargs)
    resumed = run(DPMSolverPP2M(karras(6)), None, prior, torch.Generator().manual_seed(7),
                  checkpoint_dir=tmp_path, checkpoint_every=1, **kwargs)
    assert torch.equal(full, resumed.x)


def test_checkpoint_of_another_sampler_is_refused(priors, tmp_path):
    problem = mri_problem()
    run(dds(4), problem, priors[True], torch.Generator().manual_seed(0), progress=False, checkpoint_dir=tmp_path,
        checkpoint_every=2)
    with pytest.raises(InputError, match="num_steps"):
        run(dds(6), problem, priors[True], torch.Generator().manual_seed(0), progress=False,
            checkpoint_dir=tmp_path, checkpoint_every=2)


def test_chunks_match_separate_runs(priors):
    problem = mri_problem(batch=5)
    prior = priors[True]
    gen = torch.Generator().manual_seed(2)
    chunked = run(dds(6), problem, prior, gen, max_batch=2, progress=False)
    gen = torch.Generator().manual_seed(2)
    parts = [run(dds(6), problem.select(a, b), prior, gen, progress=False).x for a, b in [(0, 2), (2, 4), (4, 5)]]
    assert torch.equal(chunked.x, torch.cat(parts))
    assert chunked.nfe == 6


def test_timing_split_and_nfe(priors):
    problem = mri_problem()
    result = run(Heun(karras(4)), None, priors[False], torch.Generator().manual_seed(0), shape=(2, 8, 8),
                 dtype=F64, progress=False)
    assert result.nfe == 2 * 4 - 1
    assert [s.network_calls for s in result.steps] == [2, 2, 2, 1]
    result = run(dds(5), problem, priors[True], torch.Generator().manual_seed(0), progress=False)
    assert result.nfe == 5
    assert all(0 < s.network_seconds <= s.seconds for s in result.steps)
    assert 0 < result.network_seconds <= result.seconds


def test_autograd_mode_is_chosen_by_the_sampler(priors):
    problem = mri_problem()
    modes = []
    denoiser = priors[True]

    def spy(x, sigma):
        modes.append(torch.is_grad_enabled())
        return denoiser(x, sigma)

    run(dds(3), problem, spy, torch.Generator().manual_seed(0), progress=False)
    run(DPS(vp_linear(3)), problem, spy, torch.Generator().manual_seed(0), progress=False)
    assert modes == [False] * 3 + [True] * 3


def test_log_weights_are_zero_for_single_particle_samplers(priors):
    states = []
    run(dds(3), mri_problem(), priors[True], torch.Generator().manual_seed(0), progress=False,
        callbacks=[lambda s, i: states.append(s)])
    assert [s.step for s in states] == [1, 2, 3]
    assert all(torch.equal(s.log_weights, torch.zeros(3, dtype=F64)) for s in states)


def test_clear_errors():
    with pytest.raises(ValueError, match="descending"):
        DDIM(torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="InverseProblem"):
        run(dds(3), None, lambda x, s: x, torch.Generator(), shape=(1, 4), progress=False)
    with pytest.raises(ValueError, match="shape"):
        run(Heun(karras(3)), None, lambda x, s: x, torch.Generator(), progress=False)
    with pytest.raises(ValueError, match="weighting"):
        REDDiff(weighting="cubic")
    with pytest.raises(ValueError, match="sigma_y"):
        InverseProblem(MatrixOperator(torch.eye(2)), torch.zeros(1, 2), 0.0).log_likelihood(torch.zeros(1, 2))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_grad_log_likelihood_is_the_autograd_gradient(dtype):
    """``grad_log_likelihood`` equals autograd's gradient of ``log_likelihood`` (real and complex images)."""
    gen = torch.Generator().manual_seed(3)
    a = MatrixOperator(torch.randn(5, 4, dtype=dtype, generator=gen))
    problem = InverseProblem(a, torch.randn(2, 5, dtype=dtype, generator=gen), 0.3)
    x = torch.randn(2, 4, dtype=dtype, generator=gen).requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.log_likelihood(x).sum(), x)
    torch.testing.assert_close(problem.grad_log_likelihood(x.detach()), grad, rtol=1e-10, atol=1e-12)
