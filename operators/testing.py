"""Public self-tests for linear operators: dot test, normal consistency, autograd vector-Jacobian product.

Each check draws random inputs from a seeded ``torch.Generator``, returns the relative error it measured and raises
``AssertionError`` when it exceeds ``rtol``.
"""
from __future__ import annotations

import torch

from .base import LinearOperator

__all__ = ["check_adjoint", "check_autograd", "check_normal", "default_rtol", "random_like_shape"]


def default_rtol(dtype: torch.dtype) -> float:
    """Tolerance used when none is given: 1e-10 in double precision, 1e-4 in single."""
    return 1e-10 if dtype in (torch.float64, torch.complex128) else 1e-4


def random_like_shape(
    shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard normal tensor (complex normal for complex dtypes), drawn on CPU with ``generator``."""
    x = torch.randn(shape, dtype=dtype, generator=generator)
    return x.to(device)


def _vdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).sum() if a.is_complex() or b.is_complex() else (a * b).sum()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(abs(complex(a)), abs(complex(b)), torch.finfo(torch.float64).tiny)
    return abs(complex(a) - complex(b)) / scale


def check_adjoint(
    op: LinearOperator,
    x_shape: tuple[int, ...],
    dtype: torch.dtype = torch.complex64,
    generator: torch.Generator | None = None,
    rtol: float | None = None,
    range_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """Dot test ``<A x, y> == <x, A^H y>`` for random ``x`` (shape ``x_shape``) and ``y`` (shape of ``A x``).

    Returns the relative error; raises ``AssertionError`` above ``rtol`` (``default_rtol(dtype)`` when None).
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x = random_like_shape(x_shape, dtype, gen, device)
    ax = op(x)
    y = random_like_shape(tuple(ax.shape), range_dtype or ax.dtype, gen, device)
    aty = op.adjoint(y)
    if aty.shape != x.shape:
        raise AssertionError(f"adjoint returned shape {tuple(aty.shape)}, expected {tuple(x.shape)}")
    err = _rel(_vdot(ax, y), _vdot(x, aty))
    tol = default_rtol(dtype) if rtol is None else rtol
    if err > tol:
        raise AssertionError(f"dot test failed for {op!r}: relative error {err:.3e} > {tol:.1e}")
    return err


def check_normal(
    op: LinearOperator,
    x_shape: tuple[int, ...],
    dtype: torch.dtype = torch.complex64,
    generator: torch.Generator | None = None,
    rtol: float | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """``A.normal(x) == A.adjoint(A(x))``; returns the relative error, raises above ``rtol``."""
    gen = generator if generator is not None else torch.Generator().manual_seed(1)
    x = random_like_shape(x_shape, dtype, gen, device)
    fast = op.normal(x)
    ref = op.adjoint(op(x))
    err = float((fast - ref).abs().norm() / ref.abs().norm().clamp_min(1e-30))
    tol = default_rtol(dtype) if rtol is None else rtol
    if err > tol:
        raise AssertionError(f"normal() disagrees with adjoint(forward()) for {op!r}: {err:.3e} > {tol:.1e}")
    return err


def check_autograd(
    op: LinearOperator,
    x_shape: tuple[int, ...],
    dtype: torch.dtype = torch.complex64,
    generator: torch.Generator | None = None,
    rtol: float | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """The vector-Jacobian product of ``A`` equals ``A^H``: ``d/dx Re<A x, y> = A^H y``."""
    gen = generator if generator is not None else torch.Generator().manual_seed(2)
    x = random_like_shape(x_shape, dtype, gen, device).requires_grad_(True)
    ax = op(x)
    y = random_like_shape(tuple(ax.shape), ax.dtype, gen, device)
    (grad,) = torch.autograd.grad(_vdot(ax, y).real, x)
    ref = op.adjoint(y.detach())
    # torch returns the conjugate Wirtinger gradient scaled so that for a real loss L(x) the step is -grad.
    err = float((grad - ref).abs().norm() / ref.abs().norm().clamp_min(1e-30))
    tol = default_rtol(dtype) if rtol is None else rtol
    if err > tol:
        raise AssertionError(f"autograd vjp differs from adjoint for {op!r}: {err:.3e} > {tol:.1e}")
    return err
