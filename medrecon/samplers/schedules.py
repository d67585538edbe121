"""The samplers' noise grids; the schedule maths lives in ``medrecon.schedules`` (shared with priors and training)."""
from medrecon.schedules import (
                                karras,
                                log_uniform,
                                vp_alpha_bar,
                                vp_alpha_bar_to_sigma,
                                vp_linear,
                                vp_sigma_to_alpha_bar,
)

__all__ = ["karras", "log_uniform", "vp_alpha_bar", "vp_alpha_bar_to_sigma", "vp_linear", "vp_sigma_to_alpha_bar"]
