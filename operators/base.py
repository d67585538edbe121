"""Linear operator algebra: forward, adjoint, normal, composition, sums and scaling.

Operators act on tensors shaped ``(*batch, *domain)`` and broadcast over the leading batch dimensions. They are
``torch.nn.Module`` s, so ``.to(device)`` moves their buffers (coil maps, masks, geometry). Adjoints use the
Hermitian inner product ``<u, v> = sum(conj(u) * v)``.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "Adjoint",
    "AdjointAsBackward",
    "Composition",
    "Identity",
    "LinearOperator",
    "Scaled",
    "Sum",
]


class LinearOperator(nn.Module):
    """A linear map ``A`` with ``forward`` (``A x``), ``adjoint`` (``A^H y``) and ``normal`` (``A^H A x``).

    Subclasses implement ``forward`` and ``adjoint``; ``normal`` may be overridden when cheaper than
    ``adjoint(forward(x))``. Algebra: ``A.H`` (adjoint), ``A @ B`` (composition), ``A + B`` (sum),
    ``c * A`` (scaling by a Python or complex scalar).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(x))

    @property
    def H(self) -> LinearOperator:
        """The adjoint operator; ``A.H.H is A``."""
        return Adjoint(self)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composition(self, other)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Sum(self, other)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Sum(self, Scaled(other, -1.0))

    def __neg__(self) -> LinearOperator:
        return Scaled(self, -1.0)

    def __mul__(self, scalar: complex) -> LinearOperator:
        if isinstance(scalar, LinearOperator):
            raise TypeError("operator * operator is ambiguous: use A @ B for composition")
        if not isinstance(scalar, numbers.Number):
            return NotImplemented
        return Scaled(self, scalar)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(LinearOperator):
    """``I x = x``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Adjoint(LinearOperator):
    """``A^H`` as an operator of its own; its adjoint is ``A`` again."""

    def __init__(self, op: LinearOperator):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op

    def __repr__(self) -> str:
        return f"{self.op!r}.H"


class Composition(LinearOperator):
    """``A_1 @ A_2 @ ... @ A_n``: applies ``A_n`` first. Nested compositions are flattened.

    ``normal`` is ``R^H (L^H L) R`` with ``L = A_1`` and ``R = A_2 @ ... @ A_n``, so a cheap ``normal`` of the
    outermost factor (a mask, say) is used instead of a forward-adjoint pair.
    """

    def __init__(self, *ops: LinearOperator):
        super().__init__()
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Composition) else [op])
        self.ops = nn.ModuleList(flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.ops):
            x = op(x)
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            y = op.adjoint(y)
        return y

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        inner = list(self.ops)[1:]
        for op in reversed(inner):
            x = op(x)
        x = self.ops[0].normal(x)
        for op in inner:
            x = op.adjoint(x)
        return x

    def replace(self, index: int, op: LinearOperator) -> Composition:
        """A new composition with factor ``index`` swapped for ``op`` (e.g. a new sampling mask)."""
        ops = list(self.ops)
        ops[index] = op
        return Composition(*ops)

    def with_factor(self, kind: type, op: LinearOperator) -> Composition:
        """A new composition with its one factor of type ``kind`` swapped for ``op`` (by type, not position:
        ``A.with_factor(Subsample, Subsample(new_mask))``); an error when ``kind`` occurs not exactly once."""
        found = [k for k, factor in enumerate(self.ops) if isinstance(factor, kind)]
        if len(found) != 1:
            raise ValueError(f"{self!r} has {len(found)} factors of type {kind.__name__}; expected exactly one")
        return self.replace(found[0], op)

    def __repr__(self) -> str:
        return " @ ".join(repr(op) for op in self.ops)


class Sum(LinearOperator):
    """``A + B`` (both map the same domain to the same range)."""

    def __init__(self, *ops: LinearOperator):
        super().__init__()
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Sum) else [op])
        self.ops = nn.ModuleList(flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(op(x) for op in self.ops)  # type: ignore[return-value]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return sum(op.adjoint(y) for op in self.ops)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return " + ".join(repr(op) for op in self.ops)


class Scaled(LinearOperator):
    """``c A`` for a real or complex scalar ``c``; the adjoint uses ``conj(c)``."""

    def __init__(self, op: LinearOperator, scalar: complex):
        super().__init__()
        self.op = op
        self.scalar = scalar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scalar * self.op(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.scalar.conjugate() * self.op.adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return abs(self.scalar) ** 2 * self.op.normal(x)

    def __repr__(self) -> str:
        return f"{self.scalar} * {self.op!r}"


class AdjointAsBackward(LinearOperator):
    """Wrap an operator whose forward is not differentiable by torch (external kernels, in-place scatter).

    The forward's vector-Jacobian product is the adjoint and vice versa, so gradients flow through a
    reconstruction loop without autograd tracing the kernel.
    """

    def __init__(self, op: LinearOperator):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply_with_adjoint_grad(self.op.forward, self.op.adjoint, x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _apply_with_adjoint_grad(self.op.adjoint, self.op.forward, y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return _apply_with_adjoint_grad(self.op.normal, self.op.normal, x)


class _LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, apply: Callable, transpose: Callable) -> torch.Tensor:  # type: ignore[override]
        ctx.transpose = transpose
        with torch.no_grad():
            return apply(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        # For a linear map L, the vjp of a real loss w.r.t. x (torch's conj convention) is L^H grad.
        return ctx.transpose(grad), None, None


def _apply_with_adjoint_grad(apply: Callable, transpose: Callable, x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _LinearFunction.apply(x, apply, transpose)
    return apply(x)
