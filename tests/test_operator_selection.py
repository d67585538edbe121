"""Acquisition seams: ``SelectRows`` (CT views chosen from all candidate angles) and ``Composition.with_factor``
(swapping a factor by type)."""
import pytest
import torch

from operators import Composition, Diagonal, FFT2c, MatrixOperator, MultiCoilMRI, SelectRows, Subsample
from operators import multicoil_mri, parallel_beam, sparse_view_angles
from operators.testing import check_adjoint
from tests.contract import assert_operator_contract


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_select_rows_passes_the_dot_test_and_matches_a_selection_matrix(dtype):
    op = SelectRows([4, 0, 7], total=9)
    check_adjoint(op, (2, 9, 5), dtype, torch.Generator().manual_seed(0))
    x = torch.randn(2, 9, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    s = torch.zeros(3, 9, dtype=dtype)
    s[torch.arange(3), torch.tensor([4, 0, 7])] = 1
    torch.testing.assert_close(op(x), s @ x)
    y = torch.randn(2, 3, 5, dtype=dtype, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.adjoint(y), s.mH @ y)
    torch.testing.assert_close(op.normal(x), s.mH @ s @ x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_select_rows_meets_the_operator_contract(dtype):
    assert_operator_contract(SelectRows([2, 5, 1], total=6), (2, 6, 4), dtype)
    if dtype == torch.float32:  # the CT projector is real
        views = SelectRows([2, 5, 1], total=6) @ parallel_beam(16, sparse_view_angles(6))
        assert_operator_contract(views, (2, 16, 16), dtype)


def test_views_selected_from_all_candidates_equal_the_projector_of_those_views():
    angles = sparse_view_angles(24)
    full = parallel_beam(32, angles)
    chosen = [3, 11, 17, 20]
    selected = SelectRows(chosen, len(angles)) @ full
    direct = parallel_beam(32, [angles[i] for i in chosen])
    x = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(selected(x), direct(x), rtol=1e-5, atol=1e-5)
    check_adjoint(selected, (2, 32, 32), torch.float32, torch.Generator().manual_seed(4))
    more = selected.with_factor(SelectRows, SelectRows([*chosen, 5], len(angles)))
    assert more(x).shape == (2, 5, full(x).shape[-1]) and more.ops[1] is full  # the projector is reused


def test_with_factor_swaps_the_mask_by_type_and_keeps_the_fast_mri_path():
    g = torch.Generator().manual_seed(5)
    smaps = torch.randn(3, 16, 16, dtype=torch.complex64, generator=g)
    first = torch.zeros(16, dtype=torch.bool)
    first[::4] = True
    second = first.clone()
    second[1] = True
    a = multicoil_mri(smaps, first).with_factor(Subsample, Subsample(second))
    assert isinstance(a, MultiCoilMRI) and a.fast
    x = torch.randn(2, 16, 16, dtype=torch.complex64, generator=g)
    torch.testing.assert_close(a(x), multicoil_mri(smaps, second)(x))


def test_with_factor_needs_exactly_one_factor_of_the_type():
    d = Diagonal(torch.ones(3))
    twice = Composition(d, MatrixOperator(torch.eye(3)), Diagonal(torch.ones(3)))
    with pytest.raises(ValueError, match="2 factors of type Diagonal"):
        twice.with_factor(Diagonal, d)
    with pytest.raises(ValueError, match="0 factors of type FFT2c"):
        twice.with_factor(FFT2c, FFT2c())


def test_bad_row_indices_are_refused():
    with pytest.raises(ValueError, match="in \\[0, 5\\)"):
        SelectRows([0, 5], 5)
    with pytest.raises(ValueError, match="distinct"):
        SelectRows([1, 1], 5)
    with pytest.raises(ValueError, match="expected 5 rows"):
        SelectRows([1], 5)(torch.zeros(2, 4, 3))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_per_sample_rows_match_each_samples_own_selection(dtype):
    chosen = torch.tensor([[4, 0, 7], [1, 2, 8]])
    op = SelectRows(chosen, total=9)
    check_adjoint(op, (2, 9, 5), dtype, torch.Generator().manual_seed(6))
    x = torch.randn(3, 2, 9, 5, dtype=dtype, generator=torch.Generator().manual_seed(7))  # (particles, B, ...)
    y = op(x)
    for b in range(2):
        torch.testing.assert_close(y[:, b], SelectRows(chosen[b], 9)(x[:, b]))
    back = op.adjoint(y)
    for b in range(2):
        torch.testing.assert_close(back[:, b], SelectRows(chosen[b], 9).adjoint(y[:, b]))
    assert_operator_contract(SelectRows(chosen, total=9), (2, 9, 4), torch.float32)


def test_per_sample_rows_along_the_last_dimension_and_bad_batches():
    op = SelectRows(torch.tensor([[0, 3], [2, 1]]), total=4, dim=-1, sample_dim=-3)  # (B, T, lines)
    x = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4)
    torch.testing.assert_close(op(x), torch.stack([x[0][:, [0, 3]], x[1][:, [2, 1]]]))
    check_adjoint(op, (2, 3, 4), torch.float64, torch.Generator().manual_seed(8))
    with pytest.raises(ValueError, match="for 2 samples, got 3"):
        op(torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match="distinct"):
        SelectRows(torch.tensor([[0, 1], [2, 2]]), 4)


def test_repeat_batch_applies_the_operator_to_every_copy_of_its_batch():
    from operators import RepeatBatch

    g = torch.Generator().manual_seed(9)
    smaps = torch.randn(2, 3, 8, 8, dtype=torch.complex64, generator=g)  # per-problem coil maps, B = 2
    masks = torch.rand(2, 1, 1, 8, generator=g) < 0.5
    a = multicoil_mri(smaps, torch.ones(8, dtype=torch.bool)).with_factor(Subsample, Subsample(masks))
    flat = RepeatBatch(a, 3, domain_ndim=2, range_ndim=3)
    x = torch.randn(6, 8, 8, dtype=torch.complex64, generator=g)  # 3 copies of the 2 problems, copy-major
    y = flat(x)
    for r in range(3):
        torch.testing.assert_close(y[2 * r:2 * r + 2], a(x[2 * r:2 * r + 2]))
    check_adjoint(flat, (6, 8, 8), torch.complex64, g)
    assert_operator_contract(flat, (6, 8, 8), torch.complex64)
    with pytest.raises(ValueError, match="not 3 copies"):
        flat(torch.zeros(4, 8, 8, dtype=torch.complex64))
