"""Sampler components of job files and the call that runs one chunk of slices through ``samplers.run``.

Each constructor's keyword-only parameters are the ``[sampler]`` options; it returns a ``SamplerComponent``
wrapping a ``medrecon.samplers.Sampler``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ..errors import ConfigError

__all__ = [
    "SamplerComponent",
    "SAMPLERS",
    "sample_chunk",
    "dds",
    "ddim_projection",
    "dps",
    "mcg",
    "score_pc",
    "red_diff",
]


@dataclass(frozen=True)
class SamplerComponent:
    """A configured sampler and the name it was built under."""

    name: str
    sampler: Any

    @property
    def num_steps(self) -> int:
        return int(self.sampler.num_steps)


def _checked(name: str, build: Callable[[], Any]) -> SamplerComponent:
    try:
        return SamplerComponent(name, build())
    except ValueError as err:
        raise ConfigError(f"sampler.kind = {name!r}: {err}") from None


def _positive(**values: float) -> None:
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"sampler.{key} = {value}: must be at least 1")


def dds(*, steps: int = 50, eta: float = 0.85, cg_iters: int = 5, gamma: float = 1.0) -> SamplerComponent:
    """Decomposed Diffusion Sampler: DDIM with CG data consistency on the Tweedie estimate (one NFE per step).

    Args:
        steps: diffusion steps (= network calls).
        eta: DDS noise mixing in [0, 1].
        cg_iters: CG iterations on (A^H A + gamma I) x = A^H y + gamma x0_hat per step.
        gamma: proximal weight (0: plain normal equations, early-stopped).
    """
    from .. import samplers

    _positive(steps=steps, cg_iters=cg_iters)
    return _checked("dds", lambda: samplers.dds(steps=steps, eta=eta, cg_iters=cg_iters, gamma=gamma))


def ddim_projection(*, steps: int = 50, eta: float = 0.85, iters: int = 20) -> SamplerComponent:
    """DDIM with a hard projection onto A x = y of every Tweedie estimate (score-MRI-style consistency).

    Args:
        steps: diffusion steps (= network calls).
        eta: DDS noise mixing in [0, 1].
        iters: CG iterations of the projection.
    """
    from .. import samplers

    _positive(steps=steps, iters=iters)
    return _checked("ddim_projection", lambda: samplers.ddim_projection(steps=steps, eta=eta, iters=iters))


def dps(*, steps: int = 1000, zeta: float = 1.0, eta: float = 1.0) -> SamplerComponent:
    """Diffusion Posterior Sampling: gradient of ||y - A D(x)|| through the network each step.

    Args:
        steps: VP-linear grid points (the paper uses 1000).
        zeta: guidance step.
        eta: 1 ancestral, 0 deterministic DDIM.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked("dps", lambda: samplers.DPS(samplers.vp_linear(steps), zeta=zeta, eta=eta))


def mcg(*, steps: int = 1000, zeta: float = 1.0, eta: float = 1.0) -> SamplerComponent:
    """Manifold Constrained Gradient: DPS plus a projection onto the (noised) measurements after each step.

    Args:
        steps: VP-linear grid points.
        zeta: guidance step.
        eta: 1 ancestral, 0 deterministic DDIM.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked("mcg", lambda: samplers.DPS(samplers.vp_linear(steps), zeta=zeta, eta=eta, mcg=True))


def score_pc(
    *,
    steps: int = 500,
    snr: float = 0.16,
    corrector_steps: int = 1,
    sigma_min: float = 0.01,
    sigma_max: float = 378.0,
) -> SamplerComponent:
    """score-MRI predictor-corrector with a hard projection after every predictor and corrector step.

    Args:
        steps: noise levels (log-uniform from sigma_max to sigma_min); NFE = steps * (1 + corrector_steps).
        snr: Langevin corrector signal-to-noise ratio.
        corrector_steps: Langevin steps per level.
        sigma_min: smallest noise level.
        sigma_max: largest noise level.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked(
        "score_pc",
        lambda: samplers.PredictorCorrector(
            samplers.log_uniform(steps, sigma_min, sigma_max),
            snr=snr,
            corrector_steps=corrector_steps,
            dc=samplers.Projection(),
        ),
    )


def red_diff(
    *,
    steps: int = 50,
    lr: float = 0.1,
    lam: float = 0.25,
    weighting: Literal["linear", "sqrt", "square", "log", "constant", "snr"] = "linear",
    init: Literal["adjoint", "cg"] = "adjoint",
) -> SamplerComponent:
    """RED-Diff: Adam on the data term plus the denoiser-residual regulariser over a descending noise grid.

    Args:
        steps: noise levels (= network calls).
        lr: Adam learning rate in image units.
        lam: regulariser weight.
        weighting: w(sigma).
        init: start from A^H y or a CG pseudo-inverse.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked(
        "red_diff", lambda: samplers.REDDiff(steps=steps, lr=lr, lam=lam, weighting=weighting, init=init)
    )


SAMPLERS: dict[str, Callable[..., SamplerComponent]] = {
    "dds": dds,
    "ddim_projection": ddim_projection,
    "dps": dps,
    "mcg": mcg,
    "score_pc": score_pc,
    "red_diff": red_diff,
}


def sample_chunk(
    component: SamplerComponent,
    prior: Any,
    op: Any,
    y: torch.Tensor,
    sigma_y: float,
    generator: torch.Generator,
    checkpoint: Path | None,
    checkpoint_every: int,
    progress: bool,
    callback: Callable[[Any], None] | None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run one chunk ``y`` ``(b, *range)`` to the end; returns ``x`` ``(b, H, W)`` and its timings.

    ``checkpoint`` is a folder: an existing checkpoint there is resumed (state and generator), and a new one
    is written every ``checkpoint_every`` steps.
    """
    from .. import samplers

    problem = samplers.InverseProblem(op, y, sigma_y)
    callbacks = [] if callback is None else [lambda state, info: callback(state)]
    result = samplers.run(
        component.sampler,
        problem,
        prior,
        generator,
        progress=progress,
        callbacks=callbacks,
        checkpoint_dir=checkpoint,
        checkpoint_every=checkpoint_every if checkpoint else 0,
    )
    timing = {
        "nfe": result.nfe,
        "sampler_s": result.seconds,
        "network_s": result.network_seconds,
        "step_s": [round(s.seconds, 6) for s in result.steps],
    }
    return result.x, timing
