"""Scan-line candidates in the active-subsampling planner: with a Gaussian prior whose lines have known, unequal
variances (independent lines), the first pick is the line of largest variance; budgets are exact and the
per-problem operator is a scan-line selection."""
import torch

from medrecon.active import acquisition_schedule, plan, retrospective
from medrecon.active.ultrasound import ScanLineCandidates
from medrecon.priors.gaussian import GaussianDenoiser
from medrecon.samplers import dds, karras
from operators.testing import check_adjoint
from tests.contract import assert_operator_contract

H, L = 4, 8


def test_scan_lines_plan_picks_the_most_uncertain_line_first():
    g = torch.Generator().manual_seed(0)
    line_var = torch.full((L,), 0.05, dtype=torch.float64)
    line_var[5] = 4.0
    prior = GaussianDenoiser(torch.zeros(H * L, dtype=torch.float64), torch.diag(line_var.repeat(H)))
    frames = (prior.sample(2, g).reshape(2, H, L)).to(torch.float64)
    cands = ScanLineCandidates(L)
    initial = torch.zeros(L, dtype=torch.bool)
    initial[0] = True
    steps = 10
    result = plan(dds(steps=steps, cg_iters=5, sigmas=karras(steps, 0.01, 5.0)), cands, prior, g,
                  initial=initial, acquire=retrospective(cands, frames),
                  schedule=acquisition_schedule(steps, 2, per_round=1), sigma_y=0.01, chains=6)
    assert result.acquired.sum(-1).tolist() == [3, 3] and bool(result.acquired[:, 5].all())
    op = cands.operator(result.acquired)
    check_adjoint(op, (2, H, L), torch.float64, torch.Generator().manual_seed(1))
    lines = cands.indices(result.acquired)
    for b in range(2):
        torch.testing.assert_close(op(frames)[b], frames[b][:, lines[b]])
    assert_operator_contract(cands.operator(result.acquired), (2, H, L), torch.float32)
