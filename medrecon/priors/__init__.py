"""Diffusion priors behind one denoiser interface (see ``base.Denoiser``)."""
from .base import Denoiser, as_sigma, score

__all__ = ["Denoiser", "as_sigma", "score"]
