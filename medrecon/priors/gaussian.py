"""Exact denoisers for Gaussian and Gaussian-mixture priors, with closed-form linear-Gaussian posteriors.

Priors live on flattened real vectors of length ``n``: an input ``x`` of shape ``(B, *image)`` is reshaped to
``(B, n)``. A complex input is read through its real representation ``view_as_real(x)`` (real and imaginary parts
interleaved), so a prior over complex images of ``m`` pixels has ``n = 2 m``; this matches the complex-as-channels
convention (each real component is noised with std ``sigma``). Closed-form posteriors take a real dense ``A``.

All computations run in float64 and return the input dtype; everything is differentiable by autograd (needed by
samplers that back-propagate through the denoiser).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["GaussianDenoiser", "GaussianMixtureDenoiser", "GaussianPosterior", "MixturePosterior"]


def _flat(x: torch.Tensor, n: int) -> torch.Tensor:
    v = torch.view_as_real(x) if x.is_complex() else x
    v = v.reshape(x.shape[0], -1).to(torch.float64)
    if v.shape[1] != n:
        raise ValueError(f"prior has dimension {n}, input of shape {tuple(x.shape)} has {v.shape[1]} real entries")
    return v


def _unflat(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.is_complex():
        return torch.view_as_complex(v.reshape(like.shape + (2,)).contiguous()).to(like.dtype)
    return v.reshape(like.shape).to(like.dtype)


def _sigma(sigma: torch.Tensor | float, batch: int, device: torch.device) -> torch.Tensor:
    s = torch.as_tensor(sigma, dtype=torch.float64, device=device)
    return s.expand(batch) if s.ndim == 0 else s.reshape(batch)


class GaussianDenoiser(nn.Module):
    """Exact Tweedie denoiser of the prior ``x0 ~ N(mean, cov)``.

    ``D(x, sigma) = mean + C (C + sigma^2 I)^{-1} (x - mean)``, evaluated through the eigendecomposition of ``C``
    (computed once). ``cov`` must be symmetric positive semi-definite.

    Args:
        mean: ``(n,)``.
        cov: ``(n, n)``.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float64)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if mean.ndim != 1 or cov.shape != (mean.numel(), mean.numel()):
            raise ValueError(f"mean must be (n,) and cov (n, n); got {tuple(mean.shape)} and {tuple(cov.shape)}")
        cov = 0.5 * (cov + cov.mT)
        evals, evecs = torch.linalg.eigh(cov)
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("evals", evals.clamp_min(0.0))
        self.register_buffer("evecs", evecs)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """``E[x0 | x0 + sigma eps = x]`` for ``x`` of shape ``(B, *image)``; ``sigma`` float or ``(B,)``."""
        v = _flat(x, self.dim)
        s2 = _sigma(sigma, v.shape[0], v.device) ** 2
        coeff = (v - self.mean) @ self.evecs
        shrink = self.evals / (self.evals + s2[:, None])
        return _unflat(self.mean + (shrink * coeff) @ self.evecs.mT, x)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Log-density of the noised marginal ``N(mean, C + sigma^2 I)`` at ``x``; shape ``(B,)``.

        At ``sigma = 0`` the covariance must be non-singular.
        """
        v = _flat(x, self.dim)
        s2 = _sigma(sigma, v.shape[0], v.device) ** 2
        var = self.evals + s2[:, None]
        coeff = (v - self.mean) @ self.evecs
        return -0.5 * ((coeff**2 / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))

    def sample(self, num: int, generator: torch.Generator, sigma: float = 0.0) -> torch.Tensor:
        """``num`` exact draws of ``x0 + sigma eps``, shape ``(num, n)`` float64."""
        z = torch.randn(num, self.dim, generator=generator, dtype=torch.float64, device=self.mean.device)
        scale = (self.evals + sigma**2).sqrt()
        return self.mean + (z * scale) @ self.evecs.mT

    def posterior(self, A: torch.Tensor, y: torch.Tensor, sigma_y: float) -> GaussianPosterior:
        """Closed-form posterior of ``x0`` given ``y = A x0 + sigma_y n`` with a real dense ``A`` of shape ``(m, n)``
        and ``y`` of shape ``(m,)`` or ``(B, m)``. ``sigma_y = 0`` is allowed when ``A C A^T`` is non-singular."""
        return _gaussian_posterior(self.mean, self.cov, A, y, sigma_y)


class GaussianPosterior:
    """``N(mean, cov)`` with ``mean`` of shape ``(B, n)`` (or ``(n,)``) and a shared ``cov`` ``(n, n)``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean = mean
        self.cov = cov


def _gaussian_posterior(
    mean: torch.Tensor, cov: torch.Tensor, A: torch.Tensor, y: torch.Tensor, sigma_y: float
) -> GaussianPosterior:
    A = torch.as_tensor(A, dtype=torch.float64, device=mean.device)
    y = torch.as_tensor(y, dtype=torch.float64, device=mean.device)
    S = A @ cov @ A.mT + sigma_y**2 * torch.eye(A.shape[0], dtype=torch.float64, device=mean.device)
    gain = torch.linalg.solve(S, A @ cov).mT  # (n, m) = C A^T S^{-1}
    post_mean = mean + (y - mean @ A.mT) @ gain.mT
    post_cov = cov - gain @ A @ cov
    return GaussianPosterior(post_mean, 0.5 * (post_cov + post_cov.mT))


class MixturePosterior:
    """Posterior of a Gaussian mixture: component weights ``(B, K)``, means ``(B, K, n)``, covariances
    ``(K, n, n)``; ``mean`` ``(B, n)`` is the overall posterior mean."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
        self.weights = weights
        self.means = means
        self.covs = covs
        self.mean = (weights[..., None] * means).sum(-2)


class GaussianMixtureDenoiser(nn.Module):
    """Exact Tweedie denoiser of the mixture ``sum_k w_k N(mean_k, cov_k)``.

    ``D(x, sigma) = sum_k r_k(x) D_k(x, sigma)`` with responsibilities
    ``r_k ∝ w_k N(x; mean_k, cov_k + sigma^2 I)`` and ``D_k`` the per-component Gaussian denoiser.

    Args:
        weights: ``(K,)`` positive, normalised internally.
        means: ``(K, n)``.
        covs: ``(K, n, n)``.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
        super().__init__()
        weights = torch.as_tensor(weights, dtype=torch.float64)
        means = torch.as_tensor(means, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        k, n = means.shape
        if weights.shape != (k,) or covs.shape != (k, n, n) or bool((weights <= 0).any()):
            raise ValueError("weights (K,) positive, means (K, n), covs (K, n, n) required")
        self.register_buffer("weights", weights / weights.sum())
        self.components = nn.ModuleList(GaussianDenoiser(means[i], covs[i]) for i in range(k))

    @property
    def dim(self) -> int:
        return self.components[0].dim

    def responsibilities(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Posterior component probabilities given the noisy ``x``; shape ``(B, K)`` float64."""
        logp = torch.stack([c.log_prob(x, sigma) for c in self.components], dim=-1) + self.weights.log()
        return torch.softmax(logp, dim=-1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """``E[x0 | x0 + sigma eps = x]`` for ``x`` of shape ``(B, *image)``."""
        r = self.responsibilities(x, sigma)
        per = torch.stack([_flat(c(x, sigma), self.dim) for c in self.components], dim=1)  # (B, K, n)
        return _unflat((r[..., None] * per).sum(1), x)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Log-density of the noised mixture marginal at ``x``; shape ``(B,)``."""
        logp = torch.stack([c.log_prob(x, sigma) for c in self.components], dim=-1) + self.weights.log()
        return torch.logsumexp(logp, dim=-1)

    def sample(self, num: int, generator: torch.Generator, sigma: float = 0.0) -> torch.Tensor:
        """``num`` exact draws, shape ``(num, n)`` float64."""
        labels = torch.multinomial(self.weights, num, replacement=True, generator=generator)
        draws = torch.stack([c.sample(num, generator, sigma) for c in self.components], dim=1)
        return draws[torch.arange(num), labels]

    def classify(self, x0: torch.Tensor) -> torch.Tensor:
        """Most probable component of clean samples ``x0``; shape ``(B,)`` (used to count mixture weights)."""
        return self.responsibilities(x0, 0.0).argmax(-1)

    def posterior(self, A: torch.Tensor, y: torch.Tensor, sigma_y: float) -> MixturePosterior:
        """Closed-form posterior for ``y = A x0 + sigma_y n`` (real dense ``A`` ``(m, n)``, ``y`` ``(B, m)``)."""
        A = torch.as_tensor(A, dtype=torch.float64, device=self.weights.device)
        y = torch.as_tensor(y, dtype=torch.float64, device=self.weights.device).reshape(-1, A.shape[0])
        eye = torch.eye(A.shape[0], dtype=torch.float64, device=A.device)
        logw, means, covs = [], [], []
        for w, comp in zip(self.weights, self.components):
            S = A @ comp.cov @ A.mT + sigma_y**2 * eye
            r = y - comp.mean @ A.mT
            logw.append(
                w.log() - 0.5 * (r * torch.linalg.solve(S, r.mT).mT).sum(-1) - 0.5 * torch.logdet(S)
            )
            post = _gaussian_posterior(comp.mean, comp.cov, A, y, sigma_y)
            means.append(post.mean)
            covs.append(post.cov)
        weights = torch.softmax(torch.stack(logw, -1), -1)
        return MixturePosterior(weights, torch.stack(means, 1), torch.stack(covs, 0))
