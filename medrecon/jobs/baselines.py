"""Classical reconstructions a job can run beside its sampler (``run.baselines = [...]``).

Each entry is ``recon(y, op, **options) -> x`` on one chunk of slices; its keyword-only parameters are the
options a ``[baseline.<name>]`` table may set (``medrecon list`` shows them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import defaults as D
from .registry import Range, value_ranges

_ONE = Range(1)
_NON_NEGATIVE = Range(0)

__all__ = ["BASELINES", "MODALITY", "OPERATOR", "cg_sense", "cgls", "check_baseline_modality", "fbp", "hazy_input",
           "l1_wavelet", "linear_lines", "tv", "tv_3d", "zero_filled"]


def zero_filled(y: torch.Tensor, op) -> torch.Tensor:
    """MRI zero-filled image A^H y (coil-combined with the operator's coil maps)."""
    from ..baselines import mri

    return mri.zero_filled(y, op)


@value_ranges(damping=_NON_NEGATIVE, iters=_ONE)
def cg_sense(
    y: torch.Tensor, op, *, damping: float = D.CG_SENSE.damping, iters: int = D.CG_SENSE.iters
) -> torch.Tensor:
    """MRI CG-SENSE: (A^H A + damping I) x = A^H y by conjugate gradient.

    Args:
        damping: Tikhonov weight relative to ||A||^2.
        iters: CG iterations.
    """
    from ..baselines import mri

    return mri.cg_sense(y, op, damping=damping, iters=iters)


@value_ranges(lamda=_NON_NEGATIVE, iters=_ONE)
def l1_wavelet(
    y: torch.Tensor, op, *, lamda: float = D.L1_WAVELET.lamda, iters: int = D.L1_WAVELET.iters
) -> torch.Tensor:
    """MRI L1-wavelet compressed sensing (FISTA, db4).

    Args:
        lamda: weight relative to max |A^H y|.
        iters: FISTA iterations.
    """
    from ..baselines import mri

    return mri.l1_wavelet(y, op, lamda=lamda, iters=iters, generator=torch.Generator().manual_seed(0))


def fbp(y: torch.Tensor, op, *, filter_name: str = "ramp") -> torch.Tensor:
    """CT filtered back-projection.

    Args:
        filter_name: reconstruction filter.
    """
    from ..baselines import ct

    return ct.fbp(y, op, filter_name=filter_name)


@value_ranges(iters=_ONE)
def cgls(y: torch.Tensor, op, *, iters: int = D.CGLS.iters) -> torch.Tensor:
    """CT least squares by CG on the normal equations.

    Args:
        iters: CG iterations.
    """
    from ..baselines import ct

    return ct.cgls(y, op, iters=iters)


def linear_lines(y: torch.Tensor, op) -> torch.Tensor:
    """Ultrasound: each missing scan line linearly interpolated between the acquired neighbours."""
    from ..baselines.ultrasound import interpolate_lines

    if op.indices.ndim == 2:  # planned lines, one set per frame
        return torch.stack([interpolate_lines(f, idx, op.total) for f, idx in zip(y, op.indices)])
    return interpolate_lines(y, op.indices, op.total)


def hazy_input(y: torch.Tensor, op) -> torch.Tensor:
    """Ultrasound dehazing: the hazy frames themselves, companded like the priors (no dehazing)."""
    from operators.ultrasound import mu_law_compress

    from .ultrasound import MU

    return mu_law_compress(y, MU)


@value_ranges(lam_rel=_NON_NEGATIVE, iters=_ONE)
def tv(y: torch.Tensor, op, *, lam_rel: float = D.TV.lam_rel, iters: int = D.TV.iters) -> torch.Tensor:
    """CT total-variation least squares (Chambolle-Pock), non-negative.

    Args:
        lam_rel: TV weight relative to the image scale.
        iters: PDHG iterations.
    """
    from ..baselines import ct

    return ct.tv_pdhg(y, op, lam_rel=lam_rel, iters=iters)


@value_ranges(lam_rel=_NON_NEGATIVE, z_weight=_NON_NEGATIVE, iters=_ONE)
def tv_3d(y: torch.Tensor, op, *, lam_rel: float = D.TV_3D.lam_rel, z_weight: float = D.TV_3D.z_weight,
          iters: int = D.TV_3D.iters) -> torch.Tensor:
    """CT 3D total variation over the whole volume (slices coupled along z; Chambolle-Pock), non-negative.

    Args:
        lam_rel: TV weight relative to the volume's scale.
        z_weight: weight of the difference between neighbouring slices against the in-plane ones.
        iters: PDHG iterations.
    """
    from ..baselines.tv3d import tv_3d as solve

    return solve(y, op, lam_rel=lam_rel, z_weight=z_weight, iters=iters)


tv_3d.couples_batch = True  # type: ignore[attr-defined]  # needs every slice of the volume in one call, in order


BASELINES: dict[str, Callable[..., torch.Tensor]] = {
    "zero_filled": zero_filled,
    "cg_sense": cg_sense,
    "l1_wavelet": l1_wavelet,
    "fbp": fbp,
    "cgls": cgls,
    "tv": tv,
    "tv_3d": tv_3d,
    "linear_lines": linear_lines,
    "hazy_input": hazy_input,
}

MODALITY = {"zero_filled": "mri", "cg_sense": "mri", "l1_wavelet": "mri", "fbp": "ct", "cgls": "ct", "tv": "ct",
            "tv_3d": "ct", "linear_lines": "ultrasound", "hazy_input": "ultrasound"}
OPERATOR = {"linear_lines": "ultrasound_scanlines", "hazy_input": "ultrasound_haze"}  # baselines of one operator


def check_baseline_modality(names: list[str], modality: str, operator: str | None = None,
                            key: str = "run.baselines") -> None:
    """Refuse a baseline of the other modality (e.g. the CT ``tv`` on an MRI job), or of another operator kind
    (``linear_lines`` on a dehazing job), before any compute; ``key`` names the job option in the message."""
    from ..errors import ConfigError

    for name in names:
        if MODALITY.get(name, modality) != modality:
            fitting = ", ".join(k for k, v in MODALITY.items() if v == modality)
            raise ConfigError(f"{key}: {name!r} is a {MODALITY[name].upper()} baseline and this is an "
                              f"{modality.upper()} job (its baselines: {fitting})")
        if operator is not None and OPERATOR.get(name, operator) != operator:
            fitting = ", ".join(k for k, v in OPERATOR.items() if v == operator) or "none"
            raise ConfigError(f"{key}: {name!r} needs operator.kind = {OPERATOR[name]!r}, not {operator!r} "
                              f"(baselines of this operator: {fitting})")
