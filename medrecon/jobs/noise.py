"""The measurement noise level a job gives its sampler: stated, known from a simulation, or estimated.

``run.sigma_y = "auto"`` takes the std that the data or operator component simulated (``noise_std``), else for
multi-coil k-space a robust estimate from the k-space corners and from the edges of the readout field of view
(``kspace_noise_std``); CT sinograms without a known level need an explicit value.
"""
from __future__ import annotations

import statistics
from typing import Any

import torch

from ..errors import ConfigError
from .problem import Volume, VolumeProblem

__all__ = ["kspace_corner_std", "kspace_noise_std", "readout_edge_std", "resolve_sigma_y"]

CORNER_FRACTION = 1 / 8
EDGE_BANDS_PER_AXIS = 16  # readout-edge bands of H / 16 rows (three per side)
NOISELESS_FRACTION = 1e-6  # an estimate below this fraction of the largest k-space value is float32 round-off


def _mad_std(values: torch.Tensor) -> float:
    """``1.4826 * median |v|`` over the real and imaginary parts of ``values`` (exact zeros left out: entries a
    file holds as zeros were not measured)."""
    flat = torch.view_as_real(values).abs().flatten() if values.is_complex() else values.abs().flatten()
    flat = flat[flat > 0] if bool((flat > 0).any()) else flat
    return float(1.4826 * flat.median())


def kspace_corner_std(y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Noise std per real component from the sampled entries in the four corners of k-space ``(S, C, H, W)``
    (outer eighth of each axis), where an image's spectrum is weakest. Signal left in the corners biases it
    upwards: measured +68 % at noise 0.001 on 640x368 MNI152 files, +16 % at 0.005 on 128x128 slices."""
    h, w = y.shape[-2:]
    e, f = max(1, int(h * CORNER_FRACTION)), max(1, int(w * CORNER_FRACTION))
    cols = _sampled_columns(w, mask)
    keep = torch.zeros(w, dtype=torch.bool)
    keep[:f], keep[-f:] = True, True
    keep &= cols
    if not bool(keep.any()):
        keep = cols
    return _mad_std(torch.cat([y[..., :e, :], y[..., -e:, :]], dim=-2)[..., keep])


def readout_edge_std(y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Noise std per real component from the edges of the readout field of view: k-space ``(S, C, H, W)``
    (readout along ``H``, fully sampled; phase encodes along ``W``) transformed along the readout only
    (orthonormal, so white noise keeps its std), at the sampled phase encodes.

    The outer three sixteenths of each side are split into three bands of ``H / 16`` rows (both sides pooled
    in each band), and the median of the three bands' estimates is returned. The edges are air wherever the
    object leaves them free (fastMRI's readout is oversampled twice), and there the estimate is unbiased
    whatever the signal. The median survives one band gone wrong: the outermost damped by a scanner's readout
    filter, or the innermost reaching the object."""
    cols = _sampled_columns(y.shape[-1], mask)
    hybrid = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(y, dim=-2), dim=-2, norm="ortho"), dim=-2)
    h = y.shape[-2]
    e = max(1, h // EDGE_BANDS_PER_AXIS)
    bands = [torch.cat([hybrid[..., k * e:(k + 1) * e, :], hybrid[..., h - (k + 1) * e:h - k * e, :]], dim=-2)
             for k in range(3) if 2 * (k + 1) * e <= h]
    return float(statistics.median(_mad_std(band[..., cols]) for band in bands))


def _sampled_columns(w: int, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(w, dtype=torch.bool) if mask is None else mask.reshape(-1, w).any(0).cpu()


def kspace_noise_std(y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Noise std per real component of multi-coil k-space ``(S, C, H, W)``: the smaller of the k-space corner
    estimate (``kspace_corner_std``) and the readout-edge estimate (``readout_edge_std``). Signal only ever
    raises either one, so the smaller is the one less biased. On noiseless data it is round-off, which
    ``resolve_sigma_y`` takes as 0 (DDS's normal equations; the ensembles refuse it).

    Both are ``1.4826 * median |v|`` over real and imaginary parts. A readout filter damping more than the
    outermost band of the oversampled field of view would make the edge estimate low: set ``run.sigma_y`` there."""
    return min(kspace_corner_std(y, mask), readout_edge_std(y, mask))


def resolve_sigma_y(value: float | str, volume: Volume, problem: VolumeProblem) -> tuple[float, dict[str, Any]]:
    """``(sigma_y, record)`` in the measurements' units for ``run.sigma_y`` (a number or ``"auto"``)."""
    if value != "auto":
        return float(value), {"sigma_y": float(value), "source": "run.sigma_y"}
    for where in (problem.info, volume.attrs):
        if "noise_std" in where:
            return float(where["noise_std"]), {"sigma_y": float(where["noise_std"]), "source": "simulated"}
    if volume.modality == "mri":
        sigma = kspace_noise_std(problem.y, problem.mask)
        source = "k-space corners and readout edges (median absolute deviation)"
        peak = float(problem.y.abs().max()) if problem.y.numel() else 0.0
        if sigma <= NOISELESS_FRACTION * peak:  # float32 round-off, not noise: the data are noiseless
            return 0.0, {"sigma_y": 0.0, "source": f"{source}: {sigma:.3g}, below {NOISELESS_FRACTION:g} of the "
                                                   "largest k-space value, taken as noiseless"}
        return sigma, {"sigma_y": sigma, "source": source}
    raise ConfigError(
        'run.sigma_y = "auto": the noise level of these sinograms is unknown; set run.sigma_y (sinogram units)'
    )
