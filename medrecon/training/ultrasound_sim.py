"""Simulated ultrasound RF by the convolution model: echogenicity maps (speckle, cysts, point targets, layered
tissue), random scatterers, the pulse-echo PSF (``operators.ultrasound``) and multipath haze.

Frames are ``(samples, lines)`` on the probe's grid (axial ``c / (2 fs)``, lateral ``pitch``). Speckle is fully
developed: one Gaussian scatterer amplitude per grid cell with variance equal to the echogenicity, so the RF is
``PulseEcho(psf) (sqrt(E) n)``. Every draw takes a ``torch.Generator``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from operators.ultrasound import Probe, PulseEcho, pulse_echo_psf

__all__ = [
    "KINDS",
    "SIM_PROBE",
    "Phantom",
    "haze_rf",
    "phantom",
    "rf_from_phantom",
    "simulate_frames",
    "speckle_reflectivity",
]

# 3 MHz at 4 samples per period (cardiac-like, as the dehazing data): 64 um axial, 0.3 mm lateral spacing.
SIM_PROBE = Probe(fc=3e6, fs=12e6, n_elements=64, pitch=0.3e-3, bandwidth=0.6, focus=6e-3)
KINDS = ("speckle", "cysts", "points", "layers", "mixed")
Kind = Literal["speckle", "cysts", "points", "layers", "mixed"]
POINT_AMPLITUDE = 12.0  # point-target reflectivity relative to the speckle std of echogenicity 1


@dataclass
class Phantom:
    """An echogenicity map ``(samples, lines)`` (mean scatterer power; 1 = background tissue), the point
    targets ``(row, col)`` (placed as single strong scatterers), and for contrast metrics the union of the
    anechoic cysts (``inside``) and a background ring around them (``outside``)."""

    echogenicity: torch.Tensor
    points: list[tuple[int, int]] = field(default_factory=list)
    inside: torch.Tensor | None = None
    outside: torch.Tensor | None = None


def _grid(samples: int, lines: int, probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.arange(samples, dtype=torch.float64)[:, None] * probe.dz
    x = (torch.arange(lines, dtype=torch.float64)[None, :] - (lines - 1) / 2) * probe.pitch
    return z, x


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def phantom(kind: Kind, samples: int, lines: int, generator: torch.Generator, probe: Probe = SIM_PROBE) -> Phantom:
    """A random phantom of ``kind``: ``speckle`` (uniform), ``cysts`` (1-3 anechoic discs of radius 0.8-2 mm),
    ``points`` (2-5 point targets on uniform speckle), ``layers`` (2-4 horizontal bands of echogenicity 0.3-3 with
    wavy boundaries) or ``mixed`` (layers, one cyst and two point targets)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    z, x = _grid(samples, lines, probe)
    depth, width = samples * probe.dz, lines * probe.pitch
    echo = torch.ones(samples, lines, dtype=torch.float64)
    if kind in ("layers", "mixed"):
        n = int(torch.randint(2, 5, (), generator=generator))
        bounds = sorted(_uniform(generator, 0.1, 0.9) * depth for _ in range(n - 1))
        level = torch.full_like(echo, _uniform(generator, 0.3, 3.0))
        for b in bounds:
            wave = b + 0.05 * depth * torch.sin(2 * math.pi * x / width * _uniform(generator, 0.5, 2)
                                                + _uniform(generator, 0, 2 * math.pi))
            level = torch.where(z > wave, torch.full_like(echo, _uniform(generator, 0.3, 3.0)), level)
        echo = level
    inside = torch.zeros(samples, lines, dtype=torch.bool)
    outside = torch.zeros_like(inside)
    n_cysts = {"cysts": int(torch.randint(1, 4, (), generator=generator)), "mixed": 1}.get(kind, 0)
    for _ in range(n_cysts):
        r = min(_uniform(generator, 0.8e-3, 2.0e-3), 0.3 * depth, 0.3 * width)
        cz, cx = _uniform(generator, r, depth - r), _uniform(generator, -width / 2 + r, width / 2 - r)
        dist = torch.sqrt((z - cz) ** 2 + (x - cx) ** 2)
        inside |= dist < 0.8 * r  # a margin inside the edge, blurred by the PSF
        outside |= (dist > 1.25 * r) & (dist < 1.8 * r)
        echo = torch.where(dist < r, torch.zeros_like(echo), echo)
    outside &= ~inside & (echo > 0)
    n_points = {"points": int(torch.randint(2, 6, (), generator=generator)), "mixed": 2}.get(kind, 0)
    margin = 8
    points = [(int(torch.randint(margin, max(margin + 1, samples - margin), (), generator=generator)),
               int(torch.randint(2, max(3, lines - 2), (), generator=generator))) for _ in range(n_points)]
    has_cyst = bool(inside.any())
    return Phantom(echo, points, inside if has_cyst else None, outside if has_cyst else None)


def speckle_reflectivity(ph: Phantom, generator: torch.Generator, point_amplitude: float = POINT_AMPLITUDE
                         ) -> torch.Tensor:
    """Scatterer amplitudes ``(samples, lines)``: ``sqrt(E) n`` with standard normal ``n``, plus the point
    targets as single scatterers of amplitude ``point_amplitude`` (float64)."""
    r = ph.echogenicity.sqrt() * torch.randn(ph.echogenicity.shape, generator=generator, dtype=torch.float64)
    for row, col in ph.points:
        r[row, col] = point_amplitude
    return r


def rf_from_phantom(ph: Phantom, generator: torch.Generator, probe: Probe = SIM_PROBE,
                    operator: PulseEcho | None = None) -> torch.Tensor:
    """Beamformed RF ``(samples, lines)`` float64 of one phantom draw: ``PulseEcho(psf)(reflectivity)``."""
    samples = ph.echogenicity.shape[0]
    op = operator if operator is not None else PulseEcho(*pulse_echo_psf(probe, samples))
    return op(speckle_reflectivity(ph, generator)[None])[0]


def haze_rf(samples: int, lines: int, generator: torch.Generator, probe: Probe = SIM_PROBE,
            decay_mm: float = 3.0) -> torch.Tensor:
    """Multipath haze ``(samples, lines)`` float64: diffuse clutter from scatterers whose power decays with depth
    (``exp(-z / decay)``) and varies smoothly across lines, seen through a defocused PSF (lateral FWHM about
    three times the tissue's): no structure, broad lateral coherence."""
    z, _ = _grid(samples, lines, probe)
    coarse = torch.rand(1, 1, 1, 4, generator=generator, dtype=torch.float64)
    lateral = F.interpolate(coarse, size=(1, lines), mode="bilinear", align_corners=True)[0, 0]
    power = torch.exp(-z / (decay_mm * 1e-3 * _uniform(generator, 0.5, 1.5))) * (0.5 + lateral)
    psf = pulse_echo_psf(probe, samples, anchors=1, f_number=4.5)
    n = torch.randn(samples, lines, generator=generator, dtype=torch.float64)
    return PulseEcho(psf[0][0])((power.sqrt() * n)[None])[0]


def simulate_frames(
    n: int, samples: int, lines: int, generator: torch.Generator, kind: Kind | Literal["haze", "any"] = "any",
    probe: Probe = SIM_PROBE,
) -> tuple[torch.Tensor, list[Phantom]]:
    """``n`` RF frames ``(n, samples, lines)`` float32, each divided by its largest ``|rf|`` (so in ``[-1, 1]``),
    with their phantoms (empty for ``kind = "haze"``). ``any`` cycles through every tissue kind."""
    op = PulseEcho(*pulse_echo_psf(probe, samples))
    frames, phantoms = [], []
    for i in range(n):
        if kind == "haze":
            rf = haze_rf(samples, lines, generator, probe)
        else:
            ph = phantom(KINDS[i % len(KINDS)] if kind == "any" else kind, samples, lines, generator, probe)
            rf = rf_from_phantom(ph, generator, probe, op)
            phantoms.append(ph)
        frames.append(rf / rf.abs().max().clamp_min(1e-30))
    return torch.stack(frames).float(), phantoms
