"""Diffusion priors behind one denoiser interface (see ``base.Denoiser``)."""
from .base import Denoiser, as_sigma, score
from .gaussian import GaussianDenoiser, GaussianMixtureDenoiser

__all__ = ["Denoiser", "GaussianDenoiser", "GaussianMixtureDenoiser", "as_sigma", "score"]
