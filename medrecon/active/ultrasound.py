"""Scan-line candidates for the active-subsampling planner: which of the ``L`` transmit lines of an ultrasound
frame to acquire next (ADS's ultrasound setting), chosen by swapping the selection in front of the frame model."""
from __future__ import annotations

import torch

from operators import Identity, LinearOperator, SelectRows

from .candidates import Candidates

__all__ = ["ScanLineCandidates"]


class ScanLineCandidates(Candidates):
    """Scan lines (the last dimension of RF/IQ frames ``(..., B, samples, lines)``) chosen from all ``lines``.

    Args:
        lines: the number of candidate lines.
        frame_model: the operator from the image to full frames (``PulseEcho`` from a reflectivity map, say);
            the identity when the prior lives on the frames themselves (companded RF).
    """

    dim = -1

    def __init__(self, lines: int, frame_model: LinearOperator | None = None):
        self.count = int(lines)
        self.model = frame_model if frame_model is not None else Identity()
        self.positions = torch.arange(self.count, dtype=torch.float64)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def selection(self, acquired: torch.Tensor) -> SelectRows:
        return SelectRows(self.indices(acquired), self.count, dim=-1, sample_dim=-3)

    def operator(self, acquired: torch.Tensor) -> LinearOperator:
        return self.selection(acquired) @ self.model

    def measure(self, full: torch.Tensor, acquired: torch.Tensor) -> torch.Tensor:
        return self.selection(acquired)(full)
