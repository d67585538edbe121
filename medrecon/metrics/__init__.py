"""Image-quality metrics (fastMRI definitions) and calibration of posterior ensembles."""
from .calibration import effective_sample_size, foreground, interval_coverage, z_histogram, z_scores
from .image import nmse, psnr, ssim

__all__ = [
    "effective_sample_size",
    "foreground",
    "interval_coverage",
    "nmse",
    "psnr",
    "ssim",
    "z_histogram",
    "z_scores",
]
