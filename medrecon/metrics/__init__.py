"""Image-quality metrics (fastMRI definitions), ultrasound contrast and resolution, and calibration of posterior
ensembles."""
from .calibration import effective_sample_size, foreground, interval_coverage, z_histogram, z_scores
from .image import nmse, psnr, ssim
from .ultrasound import cnr, envelope_psnr, fwhm, gcnr, point_fwhm

__all__ = [
    "cnr",
    "envelope_psnr",
    "fwhm",
    "gcnr",
    "point_fwhm",
    "effective_sample_size",
    "foreground",
    "interval_coverage",
    "nmse",
    "psnr",
    "ssim",
    "z_histogram",
    "z_scores",
]
