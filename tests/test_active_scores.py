"""Active-subsampling scores against the closed form: with exact posterior particles of a Gaussian, the candidate
with the largest disagreement is the one with the largest expected information gain
``0.5 log(1 + a^T C a / sigma_y^2)``."""
import math

import pytest
import torch

from medrecon.active import disagreement, greedy_batch, mixture_entropy_scores
from medrecon.priors.gaussian import GaussianDenoiser

F64 = torch.float64


@pytest.fixture(scope="module")
def posterior():
    g = torch.Generator().manual_seed(0)
    d = 12
    base = torch.randn(d, d, generator=g, dtype=F64)
    prior = GaussianDenoiser(torch.zeros(d, dtype=F64), base @ base.T / d + 0.05 * torch.eye(d, dtype=F64))
    a_seen = torch.randn(4, d, generator=g, dtype=F64) / math.sqrt(d)
    post = prior.posterior(a_seen, torch.zeros(1, 4, dtype=F64), 0.1)
    candidates = torch.randn(10, d, generator=g, dtype=F64) / math.sqrt(d)
    draws = post.mean + torch.randn(512, d, generator=g, dtype=F64) @ torch.linalg.cholesky(post.cov).T
    return post, candidates, draws


@pytest.mark.parametrize("sign", ["entropy", "ads"])
def test_the_top_candidates_match_the_expected_information_gain(posterior, sign):
    post, candidates, draws = posterior
    sigma_y = 0.1
    gain = 0.5 * torch.log1p(torch.einsum("ld,de,le->l", candidates, post.cov, candidates) / sigma_y**2)
    predictions = (draws @ candidates.T)[:, None, :]  # (P, B=1, L): one scalar measurement per candidate
    scores = mixture_entropy_scores(predictions, candidate_dim=2, sigma=sigma_y, sign=sign)[0]
    assert int(scores.argmax()) == int(gain.argmax())
    assert set(scores.topk(3).indices.tolist()) == set(gain.topk(3).indices.tolist())


def test_scores_do_not_depend_on_the_order_of_the_particles(posterior):
    _, candidates, draws = posterior
    predictions = (draws[:64] @ candidates.T)[:, None, :]
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    for sign in ("entropy", "ads"):
        torch.testing.assert_close(mixture_entropy_scores(predictions, 2, 0.3, sign),
                                   mixture_entropy_scores(predictions[perm], 2, 0.3, sign))


def test_disagreement_sums_the_group_of_each_candidate():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 2, 3, 7, 4, dtype=torch.complex128, generator=g)  # (P, B, coils, rows, columns)
    d = disagreement(z, candidate_dim=-1)
    assert d.shape == (2, 4, 5, 5)
    ref = ((z[:, None] - z[None]).abs() ** 2).sum(dim=(3, 4))  # (P, P, B, columns)
    torch.testing.assert_close(d, ref.permute(2, 3, 0, 1))


def test_greedy_batches_never_reacquire_and_spread_out():
    scores = torch.tensor([[0.0, 5.0, 4.9, 4.8, 1.0, 3.0, 0.5, 0.2]])
    acquired = torch.zeros(8, dtype=torch.bool)
    acquired[1] = True
    plain = greedy_batch(scores, 2, acquired)
    assert plain.tolist() == [[2, 3]]
    spread = greedy_batch(scores, 2, acquired, diversity=1.0, width=1.0)
    assert spread[0, 0] == 2 and int(spread[0, 1]) not in (1, 2, 3)
    assert greedy_batch(scores, 0, acquired).shape == (1, 0)
    with pytest.raises(ValueError, match="cannot choose 8"):
        greedy_batch(scores, 8, acquired)
    with pytest.raises(ValueError, match="sigma"):
        mixture_entropy_scores(torch.zeros(2, 1, 3), 2, 0.0)
