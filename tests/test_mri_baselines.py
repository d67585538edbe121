"""Classical MRI baselines: CG-SENSE and L1-wavelet beat zero-filling; CG-SENSE equals a dense solve."""
import pytest
import torch

from medrecon.baselines.mri import RECONSTRUCTORS, cg_sense, l1_wavelet, rss_zero_filled, zero_filled
from medrecon.io.simulate import simulate_multicoil
from medrecon.metrics import psnr
from operators.masks import equispaced_fraction_mask
from operators.mri import multicoil_mri


@pytest.fixture(scope="module")
def phantom_problem():
    phantominator = pytest.importorskip("phantominator")
    image = torch.tensor(phantominator.shepp_logan(48), dtype=torch.float32)[None]
    sim = simulate_multicoil(image, coils=6, generator=torch.Generator().manual_seed(0))
    mask = equispaced_fraction_mask(48, 4, torch.Generator().manual_seed(1)).mask
    op = multicoil_mri(sim.smaps, mask)
    return op(sim.images), op, sim.images.abs()


def test_cg_sense_beats_zero_filled(phantom_problem):
    y, op, truth = phantom_problem
    assert psnr(truth, cg_sense(y, op)) > psnr(truth, zero_filled(y, op)) + 3


def test_l1_wavelet_beats_zero_filled_at_4x(phantom_problem):
    pytest.importorskip("ptwt")
    y, op, truth = phantom_problem
    assert psnr(truth, l1_wavelet(y, op, iters=30)) > psnr(truth, zero_filled(y, op)) + 3


def test_cg_sense_equals_dense_solve_on_8x8():
    gen = torch.Generator().manual_seed(2)
    smaps = torch.randn(3, 8, 8, dtype=torch.complex128, generator=gen)
    mask = torch.rand(8, generator=gen) < 0.5
    op = multicoil_mri(smaps, mask)
    basis = torch.eye(64, dtype=torch.complex128).reshape(64, 8, 8)
    dense = op(basis).reshape(64, -1).T  # (measurements, pixels)
    y = op(torch.randn(1, 8, 8, dtype=torch.complex128, generator=gen))
    damping = 0.05
    normal = dense.conj().T @ dense + damping * torch.eye(64, dtype=torch.complex128)
    direct = torch.linalg.solve(normal, dense.conj().T @ y.reshape(-1)).reshape(1, 8, 8)
    torch.testing.assert_close(cg_sense(y, op, damping=damping, iters=200, tol=1e-12), direct, rtol=1e-8, atol=1e-8)


def test_rss_zero_filled_is_image_magnitude_when_fully_sampled():
    sim = simulate_multicoil(torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3)), coils=4)
    op = multicoil_mri(sim.smaps, torch.ones(16, dtype=torch.bool))
    torch.testing.assert_close(rss_zero_filled(op(sim.images), op), sim.images.abs(), rtol=1e-4, atol=1e-5)


def test_one_signature_and_batching(phantom_problem):
    y, op, _ = phantom_problem
    batch = torch.cat([y, 2 * y])
    for name, recon in RECONSTRUCTORS.items():
        options = {"iters": 5} if name in ("cg_sense", "l1_wavelet") else {}
        single, double = recon(y, op, **options), recon(batch, op, **options)
        assert double.shape == (2, *y.shape[-2:]), name
        torch.testing.assert_close(double[:1], single, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(double[1:], 2 * single, rtol=1e-3, atol=1e-4)


def test_l1_wavelet_rejects_a_zero_operator():
    op = multicoil_mri(torch.zeros(2, 16, 16, dtype=torch.complex64), torch.ones(16, dtype=torch.bool))
    with pytest.raises(ValueError, match="zero"):
        l1_wavelet(torch.zeros(1, 2, 16, 16, dtype=torch.complex64), op, iters=2)


def test_cg_sense_with_estimated_maps_on_shipped_sample():
    pytest.importorskip("h5py")
    from medrecon.io.fastmri import read_slice
    from medrecon.io.make_sample import SAMPLE_PATH
    from operators.coil_maps import lowres_maps

    sample = read_slice(SAMPLE_PATH, 1)
    mask = equispaced_fraction_mask(128, 4, torch.Generator().manual_seed(0), center_fraction=0.16)
    y = torch.where(mask.mask, sample.kspace, torch.zeros((), dtype=torch.complex64))[None]
    op = multicoil_mri(lowres_maps(y, mask.center_lines), mask.mask)
    truth = sample.target[None]
    maxval = sample.info.attrs["max"]
    assert psnr(truth, cg_sense(y, op), maxval) > psnr(truth, rss_zero_filled(y), maxval) + 3
