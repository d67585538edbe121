"""Diffusion priors behind one denoiser interface (see ``base.Denoiser``)."""
from .adapters import (
    AddChannel,
    ComplexAsChannels,
    EDMDenoiser,
    SliceWise,
    VEDenoiser,
    VPDenoiser,
    channels_to_complex,
    complex_to_channels,
)
from .base import Denoiser, as_sigma, score
from .checkpoint import default_prior, load_prior
from .gaussian import GaussianDenoiser, GaussianMixtureDenoiser

__all__ = ["AddChannel", "ComplexAsChannels", "Denoiser", "EDMDenoiser", "GaussianDenoiser",
           "GaussianMixtureDenoiser", "SliceWise", "VEDenoiser", "VPDenoiser", "as_sigma", "channels_to_complex",
           "complex_to_channels", "default_prior", "load_prior", "score"]
