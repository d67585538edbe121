"""Coil maps from the calibration region of undersampled k-space: lowres (torch) and ESPIRiT on a rectangular
calibration region (all fully sampled centre columns), checked against the true birdcage maps and sigpy."""
import pytest
import torch

from medrecon.io.simulate import simulate_multicoil
from operators.coil_maps import calibration_window, center_columns, espirit_maps, lowres_maps
from operators.masks import equispaced_fraction_mask

ZERO = torch.zeros((), dtype=torch.complex64)


@pytest.fixture(scope="module")
def undersampled():
    axis = torch.linspace(-1, 1, 32)
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    image = (torch.exp(-2 * r2) * (r2 < 0.9))[None].repeat(2, 1, 1)
    sim = simulate_multicoil(image, coils=6, generator=torch.Generator().manual_seed(0))
    mask = equispaced_fraction_mask(32, 2, torch.Generator().manual_seed(0), center_fraction=0.375)
    assert mask.center_lines == 12
    kspace = torch.where(mask.mask, sim.kspace, ZERO)
    return kspace, sim.smaps, image[0] > 0.2


@pytest.fixture(scope="module")
def brain():
    """Two anatomical 128x128 slices (the shipped sample's references) seen by 8 birdcage coils, fully sampled."""
    pytest.importorskip("h5py")
    from medrecon.io.fastmri import read_slice
    from medrecon.io.make_sample import SAMPLE_PATH

    images = torch.stack([read_slice(SAMPLE_PATH, i).target for i in (1, 2)])
    sim = simulate_multicoil(images, coils=8, generator=torch.Generator().manual_seed(1))
    return sim, images > 0.1 * images.amax()


def _alignment(estimate, truth, support):
    """|<S_est, S_true>| over coils per pixel: 1 when equal up to a pixel-wise phase."""
    return (estimate.conj() * truth).sum(dim=-3).abs()[..., support]


def test_calibration_window_is_centred_and_zero_outside():
    win = calibration_window((10, 12), 4)
    assert win.shape == (10, 12)
    nonzero = torch.nonzero(win)
    assert nonzero[:, 0].min() == 3 and nonzero[:, 0].max() == 6
    assert nonzero[:, 1].min() == 4 and nonzero[:, 1].max() == 7
    assert win[5, 6] == win.max()


def test_lowres_maps_recover_birdcage_maps(undersampled):
    kspace, smaps, support = undersampled
    maps = lowres_maps(kspace, calib_width=12)
    assert maps.shape == kspace.shape and maps.dtype == torch.complex64
    torch.testing.assert_close(maps.abs().square().sum(dim=-3)[..., support],
                               torch.ones_like(maps[:, 0].real)[..., support])
    assert _alignment(maps, smaps, support).mean() > 0.99


def test_lowres_maps_batch_equals_per_slice(undersampled):
    kspace, _, _ = undersampled
    batched = lowres_maps(kspace, 12)
    torch.testing.assert_close(batched[1], lowres_maps(kspace[1], 12))


def test_espirit_maps_recover_birdcage_maps(undersampled):
    kspace, smaps, support = undersampled
    maps = espirit_maps(kspace[:1], calib_width=12, kernel_width=4)
    assert maps.shape == kspace[:1].shape and maps.dtype == torch.complex64
    assert _alignment(maps, smaps, support).mean() > 0.99


def test_espirit_batch_equals_per_slice(undersampled):
    kspace, _, _ = undersampled
    batched = espirit_maps(kspace, 12)
    torch.testing.assert_close(batched[1], espirit_maps(kspace[1], 12), rtol=1e-4, atol=1e-5)


def test_espirit_square_region_matches_sigpy():
    """With a square calibration region the eigen-decomposition reproduces sigpy's power-iteration ESPIRiT."""
    sigpy_app = pytest.importorskip("sigpy.mri.app")
    axis = torch.linspace(-1, 1, 48)
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    sim = simulate_multicoil((torch.exp(-2 * r2) * (r2 < 0.9))[None], coils=6,
                             generator=torch.Generator().manual_seed(2))
    ksp = sim.kspace[0]
    for calib, kernel in ((24, 6), (16, 4)):
        theirs = sigpy_app.EspiritCalib(ksp.numpy(), calib_width=calib, kernel_width=kernel, show_pbar=False).run()
        ours = espirit_maps(ksp, calib_width=calib, calib_height=calib, kernel_width=kernel)
        torch.testing.assert_close(ours, torch.from_numpy(theirs), rtol=0, atol=2e-5)


@pytest.mark.parametrize("accel,fraction,lines", [(4, 0.08, 10), (8, 0.04, 5)])
def test_espirit_from_fastmri_centre_lines(brain, accel, fraction, lines):
    """fastMRI's own centre fractions at 128 columns (10 lines at 4x, 5 at 8x): maps equal the truth up to a
    pixel-wise phase inside the object, and CG-SENSE with them is no worse than with the true maps."""
    from medrecon.baselines.mri import cg_sense
    from medrecon.metrics import psnr
    from operators.mri import multicoil_mri

    sim, support = brain
    mask = equispaced_fraction_mask(128, accel, torch.Generator().manual_seed(0), center_fraction=fraction)
    y = torch.where(mask.mask, sim.kspace, ZERO)
    assert mask.center_lines == center_columns(y) == lines
    maps = espirit_maps(y, calib_width=lines)
    align = _alignment(maps, sim.smaps, support)
    assert align.mean() > 0.999 and (align > 0.99).float().mean() > 0.995
    kept = maps.abs().square().sum(dim=-3) > 0
    torch.testing.assert_close(maps.abs().square().sum(dim=-3)[kept], torch.ones(int(kept.sum())))
    truth = sim.images.abs()
    with_true = psnr(truth, cg_sense(y, multicoil_mri(sim.smaps, mask.mask)).abs())
    with_estimate = psnr(truth, cg_sense(y, multicoil_mri(maps, mask.mask)).abs())
    assert with_estimate > with_true - 0.5, (with_estimate, with_true)


def test_espirit_on_a_rectangular_grid_with_few_lines():
    """A knee-like 64x40 grid (readout oversampled) with 5 centre columns."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 40), indexing="ij")
    image = (((2 * yy) ** 2 + (xx / 0.8) ** 2 < 0.8) * (1.2 + xx))[None].float()
    sim = simulate_multicoil(image, coils=4, generator=torch.Generator().manual_seed(3))
    cols = torch.zeros(40, dtype=torch.bool)
    cols[18:23] = True
    cols[::4] = True
    y = torch.where(cols, sim.kspace, ZERO)
    assert center_columns(y) == 5
    align = _alignment(espirit_maps(y, calib_width=5), sim.smaps, image[0] > 0)
    kept = align > 0  # crop = 0.95 zeroes about 1% of the object, at its sharp edge
    assert kept.float().mean() > 0.97 and align[kept].min() > 0.98 and align[kept].mean() > 0.999


def test_center_columns_counts_the_centred_block():
    k = torch.zeros(2, 3, 4, 16, dtype=torch.complex64)
    k[..., 6:11] = 1  # columns 6..10 around DC 8: centred blocks of width 1..5 start at 8 - n // 2
    assert center_columns(k) == 5
    k[1, :, :, 6] = 0  # one slice misses column 6: the widest block is 8 - 3 // 2 .. 9 -> 3 (width 4 needs 6)
    assert center_columns(k) == 3
    assert center_columns(torch.zeros(1, 2, 4, 16, dtype=torch.complex64)) == 0


@pytest.mark.parametrize("width", [0, 40])
def test_rejects_bad_calibration_width(undersampled, width):
    with pytest.raises(ValueError, match="calib_width"):
        lowres_maps(undersampled[0], width)
    with pytest.raises(ValueError, match="calib_width"):
        espirit_maps(undersampled[0], width)


def test_espirit_rejects_unsampled_calibration_and_oversized_kernel(undersampled):
    kspace, _, _ = undersampled
    with pytest.raises(ValueError, match="not sampled"):
        espirit_maps(kspace, calib_width=20)
    with pytest.raises(ValueError, match="kernel 6x8 must fit"):
        espirit_maps(kspace, calib_width=6, kernel_width=(6, 8))


def test_espirit_maps_all_cropped_raises(undersampled):
    kspace, _, _ = undersampled
    with pytest.raises(ValueError, match="no sensitivities"):
        espirit_maps(kspace[0], calib_width=12, crop=1.01)


@pytest.mark.gpu
def test_coil_maps_on_cuda(undersampled):
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    kspace, _, _ = undersampled
    torch.testing.assert_close(lowres_maps(kspace.cuda(), 12).cpu(), lowres_maps(kspace, 12), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(espirit_maps(kspace.cuda(), 12).cpu(), espirit_maps(kspace, 12), rtol=1e-3, atol=1e-4)
