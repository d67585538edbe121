"""Candidate acquisitions: what the planner may choose (k-space columns or points, CT views), the full
measurement every candidate is part of, and the operator of a chosen subset, made by swapping one factor of the
full operator (the coil maps, FFT and projector are never rebuilt).

Every candidate set works on a batch of ``B`` problems with an acquisition mask ``acquired`` ``(B, L)`` (bool;
every row acquires the same number of candidates, so per-problem operators batch together).
"""
from __future__ import annotations

import torch

from operators import LinearOperator, MultiCoilMRI, SelectRows, Subsample

__all__ = ["Candidates", "KSpaceLines", "KSpacePoints", "ProjectionViews"]


class Candidates:
    """Base of the candidate sets.

    Attributes:
        count: ``L``, the number of candidates.
        dim: the dimension of ``predict``'s output (negative) that indexes the candidates; the others of one
            sample's range are summed by the scores.
        positions: ``(L,)`` or ``(L, D)`` coordinates of the candidates in candidate-grid units (column index,
            ``(ky, kx)``, view index): the diversity penalty's distances.
        domain_ndim, range_ndim: dimensions of one image and of one full measurement.
    """

    count: int
    dim: int
    positions: torch.Tensor
    domain_ndim: int = 2
    range_ndim: int = 2

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Every candidate's noiseless measurement of images ``(..., B, *image)``: ``(..., B, *full range)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def operator(self, acquired: torch.Tensor) -> LinearOperator:
        """The forward operator of the acquired candidates, for ``(..., B, *image)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def measure(self, full: torch.Tensor, acquired: torch.Tensor) -> torch.Tensor:
        """The measurements of ``operator(acquired)`` taken from fully sampled data ``(B, *full range)``
        (retrospective planning)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def indices(self, acquired: torch.Tensor) -> torch.Tensor:
        """``(B, k)`` the acquired candidates of every problem, in increasing order."""
        acq = self.check(acquired)
        return torch.nonzero(acq)[:, 1].reshape(acq.shape[0], int(acq[0].sum()))

    def check(self, acquired: torch.Tensor) -> torch.Tensor:
        """``acquired`` as a ``(B, L)`` bool tensor with equal counts per row (or a ``ValueError``)."""
        acq = torch.as_tensor(acquired).to(torch.bool)
        if acq.ndim == 1:
            acq = acq[None]
        if acq.ndim != 2 or acq.shape[-1] != self.count:
            raise ValueError(f"acquired must be (B, {self.count}), got {tuple(acq.shape)}")
        counts = acq.sum(-1)
        if bool((counts != counts[0]).any()):
            raise ValueError(f"every problem must hold as many acquisitions, got {counts.tolist()}")
        return acq


class KSpaceLines(Candidates):
    """Phase-encoding columns of multi-coil Cartesian k-space (fastMRI's line masks).

    Args:
        A: a ``MultiCoilMRI`` operator (any mask); its coil maps ``(C, H, W)`` or ``(B, C, H, W)`` are kept.
    """

    dim = -1
    range_ndim = 3

    def __init__(self, A: MultiCoilMRI):
        w = A.coils.smaps.shape[-1]
        self.count = w
        self.full = A.with_factor(Subsample, Subsample(torch.ones(w, dtype=torch.bool, device=A.coils.smaps.device)))
        self.positions = torch.arange(w, dtype=torch.float64)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.full(x)

    def kspace_mask(self, acquired: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 1, W)``: the columns as a k-space mask broadcast over coils and rows."""
        return self.check(acquired)[:, None, None, :]

    def operator(self, acquired: torch.Tensor) -> LinearOperator:
        return self.full.with_factor(Subsample, Subsample(self.kspace_mask(acquired)))

    def measure(self, full: torch.Tensor, acquired: torch.Tensor) -> torch.Tensor:
        return torch.where(self.kspace_mask(acquired).to(full.device), full, torch.zeros((), dtype=full.dtype))


class KSpacePoints(KSpaceLines):
    """Single k-space locations ``(ky, kx)`` (2D masks, Poisson-disc-like acquisitions), candidate index
    ``ky * W + kx``; the scores sum over coils."""

    def __init__(self, A: MultiCoilMRI):
        super().__init__(A)
        h, w = A.coils.smaps.shape[-2:]
        self.shape = (h, w)
        self.count = h * w
        ky, kx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        self.positions = torch.stack([ky.flatten(), kx.flatten()], -1).to(torch.float64)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.full(x).flatten(-2)

    def kspace_mask(self, acquired: torch.Tensor) -> torch.Tensor:
        acq = self.check(acquired)
        return acq.reshape(acq.shape[0], 1, *self.shape)


class ProjectionViews(Candidates):
    """CT views chosen from all candidate angles: ``SelectRows(views) @ projector``.

    Args:
        projector: the projector of every candidate angle, ``(..., H, W) -> (..., views, detectors)``.
        angles_deg: the candidate angles (in order; the diversity distances are in view indices).
    """

    dim = -2

    def __init__(self, projector: LinearOperator, angles_deg: torch.Tensor):
        self.projector = projector
        self.angles = torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1)
        self.count = int(self.angles.numel())
        self.positions = torch.arange(self.count, dtype=torch.float64)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(x)

    def selection(self, acquired: torch.Tensor) -> SelectRows:
        return SelectRows(self.indices(acquired), self.count, dim=-2, sample_dim=-3)

    def operator(self, acquired: torch.Tensor) -> LinearOperator:
        return self.selection(acquired) @ self.projector

    def measure(self, full: torch.Tensor, acquired: torch.Tensor) -> torch.Tensor:
        return self.selection(acquired)(full)
