"""Cartesian MRI forward operators: centred orthonormal FFT, coil sensitivities, k-space subsampling.

Conventions (fastMRI): images ``(*batch, H, W)`` complex, multi-coil k-space ``(*batch, coils, H, W)``; the FFT is
``fftshift(fftn(ifftshift(x), norm="ortho"))`` over the last two dimensions, so the DC sample sits at
``(H // 2, W // 2)``. Unsampled k-space entries are exactly ``+0`` (selected with ``torch.where``, never multiplied
by the mask, which would leave ``-0`` and leak the sign of the discarded data).
"""
from __future__ import annotations

import torch

from .base import Composition, LinearOperator

__all__ = ["Coils", "FFT2c", "MultiCoilMRI", "Subsample", "crop_readout", "fft2c", "ifft2c", "multicoil_mri"]

_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two dimensions (fastMRI ``fft2c``)."""
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(y: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over the last two dimensions (fastMRI ``ifft2c``)."""
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(y, dim=_DIMS), dim=_DIMS, norm="ortho"), dim=_DIMS)


def crop_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """k-space ``(..., H, W)`` of the image's centre ``rows`` rows (``(H - rows) // 2 + [0, rows)``, fastMRI's
    centre-crop rule), ``(..., rows, W)``: centred orthonormal inverse FFT along ``H``, crop, FFT back. Columns
    (phase encodes) are untouched, so a column mask commutes with it, and ``ifft2c`` of the result equals the
    cropped rows of ``ifft2c(kspace)`` (e.g. fastMRI's 640 oversampled readout rows -> the 320 of the recon)."""
    h = kspace.shape[-2]
    if not 0 < rows <= h:
        raise ValueError(f"rows must lie in [1, {h}], got {rows}")
    if rows == h:
        return kspace
    hybrid = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(kspace, dim=-2), dim=-2, norm="ortho"), dim=-2)
    top = (h - rows) // 2
    cut = hybrid[..., top : top + rows, :]
    return torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(cut, dim=-2), dim=-2, norm="ortho"), dim=-2)


class FFT2c(LinearOperator):
    """Centred orthonormal 2D Fourier transform over the last two dimensions; unitary, so ``normal`` is identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft2c(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Coils(LinearOperator):
    """Coil sensitivity weighting: image ``(*batch, H, W)`` -> coil images ``(*batch, C, H, W)``.

    Args:
        smaps: complex sensitivities ``(C, H, W)`` shared by the batch, or ``(B, C, H, W)`` one set per sample.
    """

    smaps: torch.Tensor

    def __init__(self, smaps: torch.Tensor):
        super().__init__()
        if smaps.ndim not in (3, 4):
            raise ValueError(f"smaps must be (C, H, W) or (B, C, H, W), got shape {tuple(smaps.shape)}")
        self.register_buffer("smaps", smaps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-3) * self.smaps

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (self.smaps.conj() * y).sum(dim=-3)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.smaps.abs() ** 2).sum(dim=-3)

    def __repr__(self) -> str:
        return f"Coils({tuple(self.smaps.shape)})"


class Subsample(LinearOperator):
    """Keep the sampled k-space entries, set the others to ``+0``; self-adjoint and idempotent.

    Args:
        mask: boolean, broadcastable to k-space: ``(W,)`` columns, ``(H, W)`` 2D, or ``(B, 1, H, W)`` per sample.
    """

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask).to(torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.forward(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    @property
    def H(self) -> LinearOperator:
        return self

    def __repr__(self) -> str:
        return f"Subsample({tuple(self.mask.shape)}, {int(self.mask.sum())} sampled)"


def _checkerboard(n: int, device: torch.device) -> torch.Tensor:
    return 1.0 - 2.0 * (torch.arange(n, device=device) % 2).to(torch.float32)


class MultiCoilMRI(Composition):
    """``Subsample(mask) @ FFT2c() @ Coils(smaps)`` with a shift-free fast path for even image sizes.

    For even ``H`` and ``W`` the centred FFT satisfies ``fft2c(v) = c * fft2(roll(D v))`` with the checkerboard
    ``D[n] = (-1)^(n_0 + n_1)``, the half-size roll and ``c = (-1)^(H/2 + W/2)``. Folding ``c * roll(D S)`` into
    the coil maps once leaves one plain ``fft2`` per coil and a roll of the (coil-free) image, so a forward-adjoint
    pair costs what an unshifted FFT pair costs. Results are the centred orthonormal transform exactly (up to
    floating-point rounding). With a column mask ``(W,)`` the normal operator skips the FFT along ``H`` (it
    commutes with the mask). Odd sizes fall back to the generic composition. The coil maps are folded once, at
    construction: to change them build a new operator (e.g. ``A.replace(2, Coils(new_maps))``) rather than
    editing ``A.coils.smaps`` in place.
    """

    def __init__(self, subsample: Subsample, fft: FFT2c, coils: Coils):
        super().__init__(subsample, fft, coils)
        smaps = coils.smaps
        h, w = smaps.shape[-2:]
        self.fast = h % 2 == 0 and w % 2 == 0
        if self.fast:
            sign = -1.0 if (h // 2 + w // 2) % 2 else 1.0
            board = _checkerboard(h, smaps.device)[:, None] * _checkerboard(w, smaps.device)[None, :]
            folded = torch.roll(sign * board * smaps, shifts=(h // 2, w // 2), dims=_DIMS)
            self.register_buffer("folded_smaps", folded.to(smaps.dtype))
        self.shift = (h // 2, w // 2)
        self.unshift = (-(h // 2), -(w // 2))

    @property
    def subsample(self) -> Subsample:
        return self.ops[0]  # type: ignore[return-value]

    @property
    def coils(self) -> Coils:
        return self.ops[2]  # type: ignore[return-value]

    def _select(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(self.subsample.mask, y, torch.zeros((), dtype=y.dtype, device=y.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().forward(x)
        coil_images = torch.roll(x, self.shift, _DIMS).unsqueeze(-3) * self.folded_smaps
        return self._select(torch.fft.fft2(coil_images, norm="ortho"))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().adjoint(y)
        coil_images = torch.fft.ifft2(self._select(y), norm="ortho")
        return torch.roll((self.folded_smaps.conj() * coil_images).sum(dim=-3), self.unshift, _DIMS)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().normal(x)
        coil_images = torch.roll(x, self.shift, _DIMS).unsqueeze(-3) * self.folded_smaps
        if self.subsample.mask.ndim == 1:
            # The column mask is diagonal along W and constant along H, so F_H^H M F_H = M.
            k = self._select(torch.fft.fft(coil_images, dim=-1, norm="ortho"))
            coil_images = torch.fft.ifft(k, dim=-1, norm="ortho")
        else:
            coil_images = torch.fft.ifft2(self._select(torch.fft.fft2(coil_images, norm="ortho")), norm="ortho")
        return torch.roll((self.folded_smaps.conj() * coil_images).sum(dim=-3), self.unshift, _DIMS)

    def replace(self, index: int, op: LinearOperator) -> Composition:
        """Swap factor ``index``; keeps the fast path when the structure stays Subsample @ FFT2c @ Coils."""
        ops = list(self.ops)
        ops[index] = op
        if isinstance(ops[0], Subsample) and isinstance(ops[1], FFT2c) and isinstance(ops[2], Coils):
            return MultiCoilMRI(ops[0], ops[1], ops[2])
        return Composition(*ops)

    def __repr__(self) -> str:
        return f"MultiCoilMRI({self.subsample!r} @ FFT2c() @ {self.coils!r})"


def multicoil_mri(smaps: torch.Tensor, mask: torch.Tensor) -> MultiCoilMRI:
    """SENSE forward operator ``A = Subsample(mask) @ FFT2c() @ Coils(smaps)``.

    Args:
        smaps: coil sensitivities ``(C, H, W)`` or ``(B, C, H, W)`` (complex); a single coil of ones gives
            single-coil MRI.
        mask: boolean sampling mask broadcastable to k-space ``(*batch, C, H, W)``: ``(W,)`` or ``(H, W)``.

    Returns:
        A composition mapping images ``(*batch, H, W)`` to k-space ``(*batch, C, H, W)``.
    """
    return MultiCoilMRI(Subsample(mask), FFT2c(), Coils(smaps))
