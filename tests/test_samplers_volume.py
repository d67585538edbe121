"""DDS and DiffusionMBIR for volumes (slices coupled along z): the difference operator's adjoint, plain DDS (and
the predictor-corrector with a CG step per slice) when uncoupled, the ADMM x/z/u iterations reaching the optimum
of the convex z-TV problem with and without the proximal term (checked by its optimality conditions), the final
normalised back-projection step, a coupled volume whose slices agree more than independent ones, the driver
refusing to split the volume; volume jobs: one chunk, bit-identical resume, a DICOM series in and a new series
with its geometry out."""
import pytest
import torch

from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import InverseProblem, PredictorCorrector, dds, dds_3d, diffusion_mbir, karras, run
from medrecon.samplers.volume import (
    SPLITS,
    admm_tv,
    difference,
    difference_adjoint,
    difference_z,
    difference_z_adjoint,
    normalised_backprojection_step,
    soft_threshold,
)
from operators import Identity, MatrixOperator, cg, parallel_beam, sparse_view_angles

F64 = torch.float64


def test_difference_adjoint_and_soft_threshold():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 4, dtype=F64, generator=g)
    d = torch.randn(4, 3, 4, dtype=F64, generator=g)
    torch.testing.assert_close((difference_z(x) * d).sum(), (x * difference_z_adjoint(d)).sum())
    v = torch.tensor([-2.0, -0.5, 0.0, 0.3, 3.0], dtype=F64)
    torch.testing.assert_close(soft_threshold(v, 1.0), torch.tensor([-1.0, 0.0, 0.0, 0.0, 2.0], dtype=F64))
    c = torch.tensor([3 + 4j], dtype=torch.complex128)
    torch.testing.assert_close(soft_threshold(c, 1.0), c * 0.8)


def _volume_problem(z=4, n=4, m=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    d = n * n
    base = torch.randn(d, d, dtype=F64, generator=g)
    prior = GaussianDenoiser(torch.zeros(d, dtype=F64), base @ base.T / d + 0.1 * torch.eye(d, dtype=F64))
    common = torch.randn(d, dtype=F64, generator=g)
    x = common + 0.1 * torch.randn(z, d, dtype=F64, generator=g)  # similar slices, each a vector (Z, d)
    A = MatrixOperator(torch.randn(m, d, dtype=F64, generator=g) / d**0.5)
    y = A(x) + 0.01 * torch.randn(z, m, dtype=F64, generator=g)
    return prior, x, InverseProblem(A, y, 0.01)


def test_uncoupled_is_plain_dds():
    prior, _, problem = _volume_problem()
    sigmas = karras(8, 0.01, 5.0).to(F64)
    a = run(dds(8, eta=0.85, sigmas=sigmas, sigma_data=1.0), problem, prior, torch.Generator().manual_seed(2),
            progress=False).x
    b = run(dds_3d(8, sigmas=sigmas, eta=0.85, sigma_data=1.0, rho=0.0), problem, prior,
            torch.Generator().manual_seed(2), progress=False).x
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_admm_reaches_the_optimum_of_the_z_tv_problem():
    _, x_true, problem = _volume_problem()
    sampler = dds_3d(8, cg_iters=200, rho=2.0, tv=0.05, admm_iters=3000, sigma_data=1.0)
    x0_hat = x_true + 0.3 * torch.randn(x_true.shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    sigma = 0.5
    x, duals = sampler.couple(x0_hat, sigma, problem, {})
    z = duals["admm_z"]
    prox = sampler.dc.weight(sigma, problem)
    # optimality: A^H (A x - y) + prox (x - x0_hat) + tv D^T s = 0 for some s in the subdifferential of |D x|_1
    _assert_z_tv_optimal(x, z, problem.A.normal(x) - problem.adjoint_y + prox * (x - x0_hat), 0.05)


def test_diffusion_mbirs_admm_reaches_the_optimum_without_a_proximal_term():
    """DiffusionMBIR's coupling: ``min ||A x - y||^2 / 2 + tv ||D_z x||_1`` from the noisy iterate."""
    _, x_true, problem = _volume_problem(m=20)
    start = x_true + 0.5 * torch.randn(x_true.shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    zeros = torch.zeros_like(start[1:])
    x, duals = admm_tv(start, problem, {"admm_z": zeros, "admm_u": zeros}, rho=2.0, tv=0.05, admm_iters=3000,
                       cg_iters=200)
    z = duals["admm_z"]
    _assert_z_tv_optimal(x, z, problem.A.normal(x) - problem.adjoint_y, 0.05)


def test_admm_with_in_plane_tv_reaches_the_optimum_of_the_3d_tv_problem():
    """``tv_xy > 0``: ``min ||x - y||^2 / 2 + tv ||D_z x||_1 + tv_xy (||D_y x||_1 + ||D_x x||_1)``; at the optimum
    the scaled duals give subgradients ``s_k = rho u_k / weight_k`` with ``grad + sum_k weight_k D_k^T s_k = 0``,
    ``|s_k| <= 1`` and ``s_k = sign(D_k x)`` where ``D_k x != 0``."""
    y = torch.randn(3, 5, 5, dtype=F64, generator=torch.Generator().manual_seed(6))
    problem = InverseProblem(Identity(), y, 0.0)
    rho, weights = 2.0, {0: 0.2, 1: 0.3, 2: 0.3}
    x, duals = admm_tv(y, problem, {}, rho=rho, tv=0.2, tv_xy=0.3, admm_iters=3000, cg_iters=50)
    residual = x - y
    for zname, uname, dim in SPLITS:
        s_k = rho * duals[uname] / weights[dim]
        residual = residual + weights[dim] * difference_adjoint(s_k, dim)
        assert float(s_k.abs().max()) <= 1 + 1e-6
        dx = difference(x, dim)
        active = dx.abs() > 1e-6
        torch.testing.assert_close(s_k[active], torch.sign(dx[active]), atol=1e-5, rtol=0)
        torch.testing.assert_close(duals[zname], dx, atol=1e-6, rtol=0)
    torch.testing.assert_close(residual, torch.zeros_like(x), atol=1e-6, rtol=0)


def _assert_z_tv_optimal(x, z, grad, tv):
    """``grad + tv D_z^T s = 0`` for some ``s`` in the subdifferential of ``|D_z x|_1``, and ``z = D_z x``."""
    s = torch.linalg.lstsq(_dense_dt(x.shape), (-grad / tv).reshape(-1, 1)).solution.reshape(z.shape)
    torch.testing.assert_close(difference_z_adjoint(s), -grad / tv, atol=1e-6, rtol=0)
    assert float(s.abs().max()) <= 1 + 1e-4
    dx = difference_z(x)
    active = dx.abs() > 1e-6
    torch.testing.assert_close(s[active], torch.sign(dx[active]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, dx, atol=1e-6, rtol=0)  # the splitting is satisfied


def _dense_dt(shape):
    """``D_z^T`` as a dense matrix ``(Z * n, (Z - 1) * n)``."""
    z = shape[0]
    n = int(torch.tensor(shape[1:]).prod())
    eye = torch.eye((z - 1) * n, dtype=F64).reshape(-1, z - 1, *shape[1:])
    return torch.stack([difference_z_adjoint(e).reshape(-1) for e in eye], 1)


def test_coupled_slices_agree_more_and_the_volume_is_not_split():
    g = torch.Generator().manual_seed(4)
    n = 16
    d = n * n
    prior = GaussianDenoiser(torch.full((d,), 0.3, dtype=torch.float64), 0.05 * torch.eye(d, dtype=torch.float64))
    image = torch.zeros(n, n)
    image[4:12, 5:11] = 1.0
    volume = image.expand(6, n, n).contiguous()  # identical slices
    A = parallel_beam(n, sparse_view_angles(4))
    y = A(volume) + 0.05 * torch.randn(A(volume).shape, generator=g)
    problem = InverseProblem(A, y, 0.05)
    sigmas = karras(10, 0.01, 2.0)
    plain = run(dds(10, sigmas=sigmas, sigma_data=0.2), problem, prior, torch.Generator().manual_seed(5),
                progress=False).x
    coupled = run(dds_3d(10, sigmas=sigmas, sigma_data=0.2, rho=5.0, tv=0.5, network_batch=4), problem, prior,
                  torch.Generator().manual_seed(5), progress=False).x
    spread = lambda x: float(difference_z(x).abs().mean())
    assert spread(coupled) < 0.5 * spread(plain)
    assert float((coupled - volume).square().mean()) < float((plain - volume).square().mean())
    with pytest.raises(ValueError, match="couples the 6 samples"):
        run(dds_3d(10, sigmas=sigmas), problem, prior, torch.Generator(), max_batch=3, progress=False)


def test_uncoupled_diffusion_mbir_is_the_predictor_corrector_then_cg_per_slice():
    """``rho = 0``: every step is ``PredictorCorrector``'s (prior score only) followed by ``cg_iters`` CG
    iterations of each slice on ``A^H A x = A^H y`` from the iterate, then the normalised back-projection."""
    prior, _, problem = _volume_problem()
    sigmas = karras(6, 0.01, 5.0).to(F64)
    got, batched = (run(diffusion_mbir(sigmas=sigmas, rho=0.0, cg_iters=2, network_batch=size), problem, prior,
                        torch.Generator().manual_seed(2), progress=False).x for size in (None, 3))
    pc, g = PredictorCorrector(sigmas, snr=0.16, corrector_steps=1), torch.Generator().manual_seed(2)
    state = pc.init(problem, prior, g)
    for _ in range(pc.num_steps):
        state = pc.step(state, None, prior, g)
        state.x = cg(problem.A.normal, problem.adjoint_y, x0=state.x, iters=2)
    torch.testing.assert_close(got, normalised_backprojection_step(state.x, problem), rtol=0, atol=0)
    torch.testing.assert_close(batched, got, rtol=0, atol=1e-10)  # 3 slices a call: the same up to round-off


def test_the_normalised_back_projection_step_solves_a_diagonal_system():
    d = torch.tensor([0.5, 2.0, 0.0, 3.0], dtype=F64)
    y = torch.tensor([[1.0, 1.0, 0.0, 6.0]], dtype=F64)
    problem = InverseProblem(MatrixOperator(torch.diag(d)), y, 0.0)
    x = normalised_backprojection_step(torch.full((1, 4), 7.0, dtype=F64), problem)
    torch.testing.assert_close(x, torch.tensor([[2.0, 0.5, 7.0, 2.0]], dtype=F64))  # y / d; unmeasured: kept


def test_coupled_diffusion_mbir_slices_agree_more_and_the_job_kind_builds_it():
    from medrecon.jobs.sampling import SAMPLERS

    g = torch.Generator().manual_seed(4)
    n = 16
    prior = GaussianDenoiser(torch.full((n * n,), 0.3, dtype=F64), 0.05 * torch.eye(n * n, dtype=F64))
    image = torch.zeros(n, n, dtype=F64)
    image[4:12, 5:11] = 1.0
    volume = image.expand(6, n, n).contiguous()
    A = parallel_beam(n, sparse_view_angles(4)).to(F64)
    y = A(volume) + 0.05 * torch.randn(A(volume).shape, generator=g, dtype=F64)
    problem = InverseProblem(A, y, 0.05)
    sigmas = karras(12, 0.01, 2.0).to(F64)
    spread = lambda x: float(difference_z(x).abs().mean())
    plain, coupled = (run(diffusion_mbir(sigmas=sigmas, rho=rho, tv=0.5, cg_iters=3), problem, prior,
                          torch.Generator().manual_seed(5), progress=False).x for rho in (0.0, 5.0))
    assert spread(coupled) < 0.5 * spread(plain)
    with pytest.raises(ValueError, match="couples the 6 samples"):
        run(diffusion_mbir(sigmas=sigmas), problem, prior, torch.Generator(), max_batch=3, progress=False)
    component = SAMPLERS["diffusion_mbir"]({"noise_schedule": {"sigma_min": 0.01, "sigma_max": 2.0}}, steps=4,
                                           rho=3.0)
    assert component.num_steps == 4 and component.sampler.couples_batch and component.settings["rho"] == 3.0
    assert list(SAMPLERS)[-1] == "diffusion_mbir"


class _Stop(Exception):
    pass


def test_a_volume_job_runs_whole_and_resumes_bit_identically(tmp_path):
    """``sampler.kind = "dds_3d"`` samples every slice together whatever ``run.batch_size``; killed mid-way, the
    resumed run (diffusion state, ADMM z and u, generator) gives the same bytes."""
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec
    from tests.test_jobs_support import stand_in_registered

    job = tmp_path / "vol.toml"
    job.write_text(f"""
[data]
kind = "ct_phantom"
phantom = "shepp_logan"
size = 16
slices = 5

[operator]
kind = "parallel_beam_ct"
views = 6
noise = 0.01

[prior]
kind = "gaussian_test"

[sampler]
kind = "dds_3d"
steps = 6
rho = 5.0
tv = 0.2
network_batch = 2

[run]
batch_size = 2
checkpoint_every = 1
outputs = []
out = "{tmp_path / 'out'}"
""")
    with stand_in_registered():
        spec = load_spec(job)
        full = run_job(spec, out=tmp_path / "full", progress=False)
        assert len(full.record["chunks"]) == 1 and full.record["chunks"][0]["slices"] == [0, 5]
        assert full.record["sampler"]["rho"] == 5.0

        def kill(chunk, state):
            if state.step == 3:
                raise _Stop

        with pytest.raises(_Stop):
            run_job(spec, out=tmp_path / "killed", progress=False, callback=kill)
        resumed = run_job(spec, out=tmp_path / "killed", resume=True, progress=False)
    assert resumed.reconstruction.tobytes() == full.reconstruction.tobytes()


def test_a_dicom_series_goes_in_and_a_new_series_with_its_geometry_comes_out(tmp_path):
    """``data.kind = "dicom"``: a CT series folder is the job's input; the DICOM output copies its geometry
    (positions, orientation, spacing) into a new series, and the NIfTI output's affine places every voxel where
    the input series did."""
    import numpy as np

    from medrecon.io.dicom import read_dicom_series, write_dicom_series
    from medrecon.io.nifti import read_nifti
    from medrecon.jobs.components import shepp_logan_volume
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec
    from tests.test_jobs_support import stand_in_registered

    hu = shepp_logan_volume(16, 4)
    write_dicom_series(tmp_path / "series", hu, spacing=(2.5, 0.8, 0.8), origin=(-6.0, -7.0, 30.0),
                       orientation=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0))
    job = tmp_path / "dicom.toml"
    job.write_text(f"""
[data]
kind = "dicom"
path = "{tmp_path / 'series'}"

[operator]
kind = "parallel_beam_ct"
views = 6

[prior]
kind = "gaussian_test"

[sampler]
kind = "dds_3d"
steps = 4

[run]
outputs = ["dicom", "nifti", "png"]
out = "{tmp_path / 'out'}"
""")
    with stand_in_registered():
        result = run_job(load_spec(job), progress=False)
    source, written = read_dicom_series(tmp_path / "series"), read_dicom_series(tmp_path / "out" / "dicom")
    np.testing.assert_allclose(written.positions, source.positions, atol=1e-4)
    np.testing.assert_allclose(written.orientation, source.orientation, atol=1e-6)
    assert written.hu.shape == (4, 16, 16) and written.series_uid != source.series_uid
    nifti = read_nifti(tmp_path / "out" / "reconstruction.nii.gz")
    index = np.array([3.0, 5.0, 2.0, 1.0])  # (row, col, slice) of the NIfTI volume
    ras = nifti.affine @ index
    lps = source.affine @ np.array([5.0, 3.0, 2.0, 1.0])  # the same voxel as (col, row, slice) in DICOM
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    assert result.reconstruction.shape == (4, 16, 16)
    assert (tmp_path / "out" / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "montage.png" in result.record["outputs"]
