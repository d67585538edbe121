"""The contract every linear operator meets; each operator family's tests call it over its tiny instances."""
from __future__ import annotations

import torch

from operators import LinearOperator
from operators.testing import check_adjoint, check_autograd, check_normal

DOUBLE = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def assert_operator_contract(
    op: LinearOperator,
    x_shape: tuple[int, ...],
    dtype: torch.dtype,
    rtol32: float = 1e-4,
    rtol64: float = 1e-10,
    check_grad: bool = True,
) -> None:
    """Dot test in float64 and float32, ``A.H.H is A``, normal == adjoint(forward), vjp == adjoint,
    broadcasting over an extra leading batch dimension, and dtype preservation.

    ``x_shape`` includes one leading batch dimension; ``dtype`` is the single-precision domain dtype.
    """
    gen = torch.Generator().manual_seed(1234)
    op64 = op.to(torch.float64) if dtype == torch.float32 else op
    check_adjoint(op64, x_shape, DOUBLE[dtype], gen, rtol=rtol64)
    check_adjoint(op, x_shape, dtype, gen, rtol=rtol32)
    assert op.H.H is op
    check_normal(op, x_shape, dtype, gen, rtol=max(rtol32, 1e-5))
    if check_grad:
        check_autograd(op, x_shape, dtype, gen, rtol=max(rtol32, 1e-5))
    x = torch.randn(x_shape, dtype=dtype, generator=gen)
    y = op(x)
    assert y.dtype == dtype or (dtype == torch.float32 and y.dtype in (torch.float32, torch.complex64))
    assert op.adjoint(y).dtype == dtype
    stacked = torch.stack([x, 2 * x])
    y2 = op(stacked)
    torch.testing.assert_close(y2[0], y, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y2[1], 2 * y, rtol=1e-4, atol=1e-5)
