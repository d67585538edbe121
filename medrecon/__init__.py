"""medrecon: physics operators + pretrained 2D diffusion priors + posterior samplers for medical imaging."""
__version__ = "0.1.0"
