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
