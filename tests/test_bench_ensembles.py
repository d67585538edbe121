"""``medrecon bench ensembles --calibration``: the sampler list is parsed as job options, the prior draws and
their measurements are what the table says, and a tiny run fills every column."""
from __future__ import annotations

import pytest
import torch

from medrecon.bench.ensembles import calibration, calibration_problem, parse_samplers


def test_sampler_lists_parse_into_job_options():
    assert parse_samplers("smc; smc:ess_floor=0,lam=2.0 ;afdps:variant='sde'") == [
        ("smc", {}), ("smc", {"ess_floor": 0, "lam": 2.0}), ("afdps", {"variant": "sde"})]


def test_the_splits_draw_different_images_and_the_noise_is_the_stated_one():
    _, validation, _ = calibration_problem("ct", 1, 0.01, "validation", torch.device("cpu"))
    _, test, problem = calibration_problem("ct", 1, 0.01, "test", torch.device("cpu"))
    assert validation.shape == test.shape == (1, 128, 128) and not torch.equal(validation, test)
    with torch.no_grad():
        clean = problem.A(test)
    assert float(problem.sigma_y) == pytest.approx(0.01 * float(clean.abs().max()))
    residual = (problem.y - clean).std()
    assert float(residual) == pytest.approx(float(problem.sigma_y), rel=0.05)


def test_a_tiny_calibration_run_fills_the_table():
    rows = calibration(1, parse_samplers("smc:ess_floor=1.0"), torch.device("cpu"), "ct", "validation",
                       particles=2, steps=2)
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    assert cells[0].startswith("smc:ess_floor=1.0") and cells[1] == "2 x 2"
    coverage = float(cells[2].split("+-")[0])
    assert 0 <= coverage <= 1 and float(cells[7]) == 0.0  # a floor of 1: the weights never move
