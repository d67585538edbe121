"""Posterior samplers in the VE variable: schedules, the Gaussian transition, data consistency, DDIM/DDS, DPS/MCG,
predictor-corrector, RED-Diff, DDS and DiffusionMBIR for volumes (slices coupled along z), joint two-prior dehazing, prior-only ODE samplers, independent chains of any single-chain sampler averaged (``IndependentChains``) and the ``run`` driver."""
from .chains import IndependentChains, repeat_problem
from .consistency import KrylovCG, LikelihoodGradient, Projection, data_weight, x0_variance
from .ddim import DDIM, ddim_projection, dds
from .dehaze import CompandedMixtureGradient, JointDehazing, joint_dehazing
from .dps import DPS, NormalisedResidualGradient
from .driver import RunResult, StepInfo, TimedDenoiser, run
from .ode import DPMSolverPP2M, Heun
from .pc import PredictorCorrector
from .problem import InverseProblem
from .reddiff import REDDiff
from .schedules import karras, log_uniform, vp_linear
from .state import Sampler, State
from .volume import DDS3D, DiffusionMBIR, dds_3d, diffusion_mbir

__all__ = [
    "DDIM",
    "DDS3D",
    "DPS",
    "CompandedMixtureGradient",
    "DPMSolverPP2M",
    "DiffusionMBIR",
    "Heun",
    "IndependentChains",
    "InverseProblem",
    "JointDehazing",
    "KrylovCG",
    "LikelihoodGradient",
    "NormalisedResidualGradient",
    "PredictorCorrector",
    "Projection",
    "REDDiff",
    "RunResult",
    "Sampler",
    "State",
    "StepInfo",
    "TimedDenoiser",
    "data_weight",
    "ddim_projection",
    "dds",
    "dds_3d",
    "diffusion_mbir",
    "joint_dehazing",
    "karras",
    "log_uniform",
    "repeat_problem",
    "run",
    "vp_linear",
    "x0_variance",
]
