"""Noise grids and the shared Gaussian transition against their VP-form definitions."""
import math

import numpy as np
import pytest
import torch

from medrecon.samplers import karras, log_uniform, vp_linear
from medrecon.samplers.transitions import ddim_step, dds_step, gaussian_like


def test_karras_grid():
    s = karras(10, 0.002, 80.0, 7.0)
    assert len(s) == 11 and s[-1] == 0
    assert math.isclose(s[0], 80.0) and math.isclose(s[-2], 0.002)
    assert bool((s[1:] < s[:-1]).all())
    mid = (80 ** (1 / 7) + 0.5 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert math.isclose(karras(3, 0.002, 80.0)[1], mid, rel_tol=1e-12)


def test_log_uniform_grid():
    s = log_uniform(5, 0.01, 378.0)
    assert len(s) == 6 and s[-1] == 0
    ratios = s[1:-1] / s[:-2]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    assert math.isclose(s[0], 378.0) and math.isclose(s[-2], 0.01)


@pytest.mark.parametrize("steps", [20, 50, 100])
def test_vp_linear_grid_matches_the_ddim_definition(steps):
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - betas)
    skip = 1000 // steps
    grid = list(range(0, 1000, skip))[::-1]
    expected = np.sqrt((1 - abar[grid]) / abar[grid])
    s = vp_linear(steps)
    assert len(s) == steps + 1 and s[-1] == 0
    np.testing.assert_allclose(s[:-1].numpy(), expected, rtol=1e-10)


def test_dds_step_is_the_vp_update_in_ve_form():
    """VP: x_j = sqrt(a_j) x0' + sqrt(1 - a_j) (eta xi + sqrt(1 - eta^2) eps); VE x = x_vp / sqrt(a_j)."""
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    a_j, eta = 0.7, 0.85
    sigma_j = math.sqrt((1 - a_j) / a_j)
    ve = dds_step(x0, eps, sigma_j, eta, torch.Generator().manual_seed(1))
    xi = torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    vp = math.sqrt(a_j) * x0 + math.sqrt(1 - a_j) * (eta * xi + math.sqrt(1 - eta**2) * eps)
    torch.testing.assert_close(ve * math.sqrt(a_j), vp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_ddim_step_is_the_vp_ddim_update_in_ve_form(eta):
    """VP DDIM: x' = sqrt(a') x0 + sqrt(1 - a' - c^2) eps + c xi, c = eta sqrt((1-a')/(1-a)) sqrt(1 - a/a')."""
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    a, a_next = 0.3, 0.6
    s, s_next = math.sqrt((1 - a) / a), math.sqrt((1 - a_next) / a_next)
    ve = ddim_step(x0, eps, s, s_next, eta, torch.Generator().manual_seed(1))
    c = eta * math.sqrt((1 - a_next) / (1 - a)) * math.sqrt(1 - a / a_next)
    xi = torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    vp = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next - c**2) * eps + (c * xi if eta > 0 else 0)
    torch.testing.assert_close(ve * math.sqrt(a_next), vp, rtol=1e-12, atol=1e-12)


def test_complex_noise_has_unit_variance_per_real_component():
    z = gaussian_like(torch.empty(20000, dtype=torch.complex64), torch.Generator().manual_seed(0))
    assert abs(float(z.real.var()) - 1) < 0.05 and abs(float(z.imag.var()) - 1) < 0.05
