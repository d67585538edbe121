import pytest
import torch

from operators import Composition, Diagonal, Identity, MatrixOperator, cg, power_norm
from operators.testing import check_adjoint
from tests.contract import assert_operator_contract


def _matrix(m, n, seed, dtype=torch.complex128):
    return torch.randn(m, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "build",
    [
        lambda: MatrixOperator(_matrix(5, 4, 0)),
        lambda: MatrixOperator(_matrix(5, 4, 0)) @ Diagonal(_matrix(1, 4, 1)[0]),
        lambda: (2 - 0.5j) * MatrixOperator(_matrix(5, 4, 0)) + MatrixOperator(_matrix(5, 4, 2)),
        lambda: MatrixOperator(_matrix(5, 4, 0)).H @ MatrixOperator(_matrix(5, 4, 3)),
        lambda: MatrixOperator(_matrix(4, 4, 0)) - Identity(),
    ],
)
def test_algebra_contract(build):
    op = build().to(torch.complex64)
    assert_operator_contract(op, (3, 4), torch.complex64)


def test_composition_flattens_and_replaces():
    a, b, c = (Diagonal(torch.full((4,), float(i + 1))) for i in range(3))
    comp = a @ (b @ c)
    assert isinstance(comp, Composition) and len(comp.ops) == 3
    swapped = comp.replace(0, Identity())
    x = torch.ones(4)
    torch.testing.assert_close(swapped(x), torch.full((4,), 6.0))
    torch.testing.assert_close(comp.normal(x), torch.full((4,), 36.0))


def test_operator_times_operator_raises():
    a = Diagonal(torch.ones(3))
    with pytest.raises(TypeError, match="@"):
        a * a


def test_adjoint_of_adjoint_is_same_object():
    a = MatrixOperator(_matrix(3, 2, 0))
    assert a.H.H is a
    check_adjoint(a.H, (2, 3), torch.complex128)


def test_dot_test_detects_wrong_adjoint():
    class Wrong(MatrixOperator):
        def adjoint(self, y):
            return y @ self.matrix.to(y.dtype)  # missing conj

    with pytest.raises(AssertionError, match="dot test"):
        check_adjoint(Wrong(_matrix(4, 3, 0)), (2, 3), torch.complex128)


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_cg_matches_direct_solve_complex_batched(damping):
    m = _matrix(7, 5, 4)
    op = MatrixOperator(m)
    rhs = _matrix(3, 5, 5)
    x = cg(op.normal, rhs, iters=50, damping=damping, tol=1e-13)
    normal = m.conj().T @ m + damping * torch.eye(5, dtype=m.dtype)
    ref = torch.linalg.solve(normal, rhs.T).T
    torch.testing.assert_close(x, ref, rtol=1e-9, atol=1e-9)


def test_cg_is_per_sample():
    """Each batch entry is solved as if alone (per-sample step sizes)."""
    m = _matrix(6, 4, 6)
    op = MatrixOperator(m)
    rhs = _matrix(2, 4, 7)
    both = cg(op.normal, rhs, iters=3)
    alone = torch.cat([cg(op.normal, rhs[i : i + 1], iters=3) for i in range(2)])
    torch.testing.assert_close(both, alone)


def test_cg_warm_start_and_zero_rhs():
    m = _matrix(6, 4, 8)
    op = MatrixOperator(m)
    rhs = torch.zeros(2, 4, dtype=m.dtype)
    out = cg(op.normal, rhs, x0=torch.zeros_like(rhs), iters=5)
    assert torch.count_nonzero(out) == 0 and torch.isfinite(out.real).all()


def test_power_norm():
    m = _matrix(8, 5, 9)
    est = power_norm(MatrixOperator(m).normal, _matrix(1, 5, 10)[0], iters=200)
    assert abs(float(est) - float(torch.linalg.matrix_norm(m, 2) ** 2)) < 1e-6 * float(est)


def test_cg_stays_bounded_on_rank_deficient_systems():
    """Past convergence on a singular normal operator CG must not amplify round-off."""
    gen = torch.Generator().manual_seed(11)
    m = torch.randn(2, 6, dtype=torch.float64, generator=gen)  # rank 2 in 6 dimensions
    op = MatrixOperator(m)
    y = torch.randn(3, 2, dtype=torch.float64, generator=gen)
    rhs = op.adjoint(y)
    x = cg(op.normal, rhs, iters=40)
    torch.testing.assert_close(op(x), y, rtol=1e-8, atol=1e-8)
    assert float(x.norm()) < 10 * float(torch.linalg.pinv(m).matmul(y.T).norm())
