"""Image-quality metrics (fastMRI definitions)."""
from .image import nmse, psnr, ssim

__all__ = ["nmse", "psnr", "ssim"]
