"""Coil maps from the calibration region of undersampled k-space: lowres (torch) and ESPIRiT (sigpy)."""
import pytest
import torch

from medrecon.io.simulate import simulate_multicoil
from operators.coil_maps import calibration_window, espirit_maps, lowres_maps
from operators.masks import equispaced_fraction_mask


@pytest.fixture(scope="module")
def undersampled():
    axis = torch.linspace(-1, 1, 32)
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    image = (torch.exp(-2 * r2) * (r2 < 0.9))[None].repeat(2, 1, 1)
    sim = simulate_multicoil(image, coils=6, generator=torch.Generator().manual_seed(0))
    mask = equispaced_fraction_mask(32, 2, torch.Generator().manual_seed(0), center_fraction=0.375)
    assert mask.center_lines == 12
    kspace = torch.where(mask.mask, sim.kspace, torch.zeros((), dtype=torch.complex64))
    return kspace, sim.smaps, image[0] > 0.2


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
    pytest.importorskip("sigpy")
    kspace, smaps, support = undersampled
    maps = espirit_maps(kspace[:1], calib_width=12, kernel_width=4, max_iter=30)
    assert maps.shape == kspace[:1].shape and maps.dtype == torch.complex64
    assert _alignment(maps, smaps, support).mean() > 0.99


@pytest.mark.parametrize("width", [0, 40])
def test_rejects_bad_calibration_width(undersampled, width):
    with pytest.raises(ValueError, match="calib_width"):
        lowres_maps(undersampled[0], width)


@pytest.mark.gpu
def test_lowres_maps_on_cuda(undersampled):
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    kspace, _, _ = undersampled
    torch.testing.assert_close(lowres_maps(kspace.cuda(), 12).cpu(), lowres_maps(kspace, 12), rtol=1e-4, atol=1e-5)


def test_espirit_maps_too_small_calibration_raises(undersampled):
    pytest.importorskip("sigpy")
    kspace, _, _ = undersampled
    with pytest.raises(ValueError, match="too small"):
        espirit_maps(kspace[0], calib_width=5, kernel_width=4, max_iter=5)
