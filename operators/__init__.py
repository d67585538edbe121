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
from .ct import CTProjector, fan_beam, limited_angle_angles, parallel_beam, sparse_view_angles
from .coil_maps import espirit_maps, lowres_maps
from .dense import Diagonal, MatrixOperator
from .masks import (
    Mask,
    acceleration,
    default_center_fraction,
    equispaced_fraction_mask,
    equispaced_mask,
    poisson_disc_mask,
    random_mask,
    variable_density_mask,
)
from .mri import FFT2c, Coils, MultiCoilMRI, Subsample, fft2c, ifft2c, multicoil_mri
from .solvers import cg, inner, power_norm

__all__ = [
    "acceleration",
    "Adjoint",
    "AdjointAsBackward",
    "cg",
    "Coils",
    "Composition",
    "CTProjector",
    "default_center_fraction",
    "Diagonal",
    "equispaced_fraction_mask",
    "equispaced_mask",
    "espirit_maps",
    "fan_beam",
    "fft2c",
    "FFT2c",
    "Identity",
    "ifft2c",
    "inner",
    "limited_angle_angles",
    "LinearOperator",
    "lowres_maps",
    "Mask",
    "MatrixOperator",
    "multicoil_mri",
    "MultiCoilMRI",
    "parallel_beam",
    "poisson_disc_mask",
    "power_norm",
    "random_mask",
    "Scaled",
    "sparse_view_angles",
    "Subsample",
    "Sum",
    "variable_density_mask",
]
