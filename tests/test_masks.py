"""Sampling masks: fastMRI semantics (centre block, accelerations), determinism, +0 masking (property tests)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.masks import (
    acceleration,
    default_center_fraction,
    equispaced_fraction_mask,
    equispaced_mask,
    poisson_disc_mask,
    random_fixed_mask,
    random_mask,
    variable_density_mask,
)
from operators.mri import FFT2c, Subsample

COLUMN_MASKS = [random_mask, random_fixed_mask, equispaced_mask, equispaced_fraction_mask]
widths = st.integers(min_value=48, max_value=400)
accels = st.sampled_from([4, 8])
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_default_center_fractions_are_fastmri_pairs():
    assert default_center_fraction(4) == pytest.approx(0.08)
    assert default_center_fraction(8) == pytest.approx(0.04)


@pytest.mark.parametrize("make", COLUMN_MASKS)
@settings(max_examples=30, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_column_masks_centre_block_and_reported_acceleration(make, width, accel, seed):
    m = make(width, accel, _gen(seed))
    assert m.mask.dtype == torch.bool and m.mask.shape == (width,)
    num_low = round(width * default_center_fraction(accel))
    assert m.center_lines == num_low
    pad = (width - num_low + 1) // 2
    assert m.mask[pad : pad + num_low].all()
    assert m.acceleration == width / int(m.mask.sum()) == acceleration(m.mask)


@pytest.mark.parametrize("make", COLUMN_MASKS)
@settings(max_examples=20, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_column_masks_are_deterministic(make, width, accel, seed):
    assert torch.equal(make(width, accel, _gen(seed)).mask, make(width, accel, _gen(seed)).mask)


@settings(max_examples=30, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_random_fixed_mask_samples_exactly_width_over_r(width, accel, seed):
    m = random_fixed_mask(width, accel, _gen(seed))
    assert int(m.mask.sum()) == round(width / accel)
    assert m.acceleration == width / round(width / accel)


def test_random_fixed_mask_varies_the_lines_not_their_number():
    drawn = [random_fixed_mask(128, 8, _gen(s), center_fraction=0.04).mask for s in range(20)]
    assert {int(m.sum()) for m in drawn} == {16}
    assert len({tuple(m.nonzero().flatten().tolist()) for m in drawn}) > 15


@settings(max_examples=30, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_random_mask_count_is_binomial_around_width_over_r(width, accel, seed):
    m = random_mask(width, accel, _gen(seed))
    num_low = m.center_lines
    p = (width / accel - num_low) / (width - num_low)
    spread = 6 * math.sqrt((width - num_low) * p * (1 - p)) + 1
    assert abs(int(m.mask.sum()) - width / accel) <= spread


@settings(max_examples=30, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_equispaced_mask_every_r_th_column_from_offset(width, accel, seed):
    m = equispaced_mask(width, accel, _gen(seed))
    outside = m.mask.clone()
    pad = (width - m.center_lines + 1) // 2
    outside[pad : pad + m.center_lines] = False
    offset = int(torch.nonzero(outside)[0]) % accel
    assert m.mask[offset::accel].all()
    assert m.acceleration <= accel


@settings(max_examples=40, deadline=None)
@given(width=widths, accel=accels, seed=seeds)
def test_equispaced_fraction_mask_matches_width_over_r(width, accel, seed):
    m = equispaced_fraction_mask(width, accel, _gen(seed))
    assert abs(int(m.mask.sum()) - width / accel) <= 2


def test_equispaced_fraction_mask_exact_at_fastmri_sizes():
    assert int(equispaced_fraction_mask(320, 4, _gen(0)).mask.sum()) == 80
    assert equispaced_fraction_mask(320, 4, _gen(0)).acceleration == 4.0


@settings(max_examples=20, deadline=None)
@given(size=st.sampled_from([(24, 32), (32, 32), (40, 28)]), accel=st.sampled_from([3.0, 4.0, 6.0]), seed=seeds)
def test_variable_density_mask_exact_count_and_calibration(size, accel, seed):
    m = variable_density_mask(size, accel, _gen(seed), calib=8)
    h, w = size
    assert m.mask.shape == size and int(m.mask.sum()) == round(h * w / accel)
    r0, c0 = (h - 8 + 1) // 2, (w - 8 + 1) // 2
    assert m.mask[r0 : r0 + 8, c0 : c0 + 8].all()
    assert torch.equal(m.mask, variable_density_mask(size, accel, _gen(seed), calib=8).mask)


def test_poisson_disc_mask_acceleration_calibration_determinism():
    pytest.importorskip("sigpy")
    m = poisson_disc_mask((32, 32), 3.0, _gen(5), calib=8, tol=0.2)
    assert m.mask.dtype == torch.bool and m.mask.shape == (32, 32)
    assert abs(m.acceleration - 3.0) < 0.2
    assert m.mask[12:20, 12:20].all()
    assert torch.equal(m.mask, poisson_disc_mask((32, 32), 3.0, _gen(5), calib=8, tol=0.2).mask)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, kind=st.sampled_from(["random", "equispaced", "fraction", "density"]))
def test_subsampled_kspace_has_positive_zeros(seed, kind):
    gen = _gen(seed)
    mask = {
        "random": lambda: random_mask(32, 4, gen).mask,
        "equispaced": lambda: equispaced_mask(32, 4, gen).mask,
        "fraction": lambda: equispaced_fraction_mask(32, 4, gen).mask,
        "density": lambda: variable_density_mask((16, 32), 4, gen, calib=4).mask,
    }[kind]()
    x = -(torch.rand(2, 16, 32, generator=gen) + 1j * torch.rand(2, 16, 32, generator=gen)).to(torch.complex64)
    y = (Subsample(mask) @ FFT2c())(x)
    full = mask.expand(16, 32)
    dropped = y[:, ~full]
    assert (dropped == 0).all()
    assert not torch.signbit(dropped.real).any() and not torch.signbit(dropped.imag).any()


@pytest.mark.parametrize("bad", [{"accel": 1}, {"center_fraction": 0.5}])
def test_rejects_impossible_settings(bad):
    args = {"num_cols": 64, "accel": 4, "generator": _gen(0)} | bad
    with pytest.raises(ValueError):
        random_mask(**args)


def test_acceleration_of_empty_mask_raises():
    with pytest.raises(ValueError):
        acceleration(torch.zeros(8, dtype=torch.bool))
