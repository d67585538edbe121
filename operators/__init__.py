"""Physics forward operators for medical image reconstruction (torch only; importable on its own)."""
from .base import (
    Adjoint,
    AdjointAsBackward,
    Composition,
    Identity,
    LinearOperator,
    Scaled,
    Sum,
)
from .dense import Diagonal, MatrixOperator
from .solvers import cg, inner, power_norm

__all__ = [
    "Adjoint",
    "AdjointAsBackward",
    "Composition",
    "Diagonal",
    "Identity",
    "LinearOperator",
    "MatrixOperator",
    "Scaled",
    "Sum",
    "cg",
    "inner",
    "power_norm",
]
