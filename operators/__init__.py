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
from .batching import RepeatBatch
from .coil_maps import espirit_maps, lowres_maps
from .ct import CTProjector, fan_beam, limited_angle_angles, parallel_beam, sparse_view_angles
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
from .mri import Coils, FFT2c, MultiCoilMRI, Subsample, fft2c, ifft2c, multicoil_mri
from .selection import SelectRows
from .solvers import cg, inner, power_norm
from .ultrasound import Demodulate, Probe, PulseEcho, ScanLines, SourceMixture, haze_mixture

__all__ = [
    "Adjoint",
    "AdjointAsBackward",
    "CTProjector",
    "Coils",
    "Demodulate",
    "Composition",
    "Diagonal",
    "FFT2c",
    "Identity",
    "LinearOperator",
    "Mask",
    "MatrixOperator",
    "MultiCoilMRI",
    "Probe",
    "PulseEcho",
    "Scaled",
    "RepeatBatch",
    "SelectRows",
    "Subsample",
    "Sum",
    "acceleration",
    "cg",
    "default_center_fraction",
    "equispaced_fraction_mask",
    "equispaced_mask",
    "espirit_maps",
    "fan_beam",
    "fft2c",
    "haze_mixture",
    "ifft2c",
    "inner",
    "limited_angle_angles",
    "lowres_maps",
    "multicoil_mri",
    "parallel_beam",
    "poisson_disc_mask",
    "power_norm",
    "random_mask",
    "sparse_view_angles",
    "variable_density_mask",
]
