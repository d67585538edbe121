"""Sampler components of job files and the call that runs one chunk of slices through ``samplers.run``.

Each constructor's keyword-only parameters are the ``[sampler]`` options; it returns a ``SamplerComponent``
wrapping a ``medrecon.samplers.Sampler``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .. import defaults as D
from ..errors import ConfigError
from .registry import Range, value_ranges

_ONE = Range(1)  # counts of steps and iterations
_POSITIVE = Range(0, lo_open=True)
_NON_NEGATIVE = Range(0)
_UNIT = Range(0, 1)

__all__ = [
    "SAMPLERS",
    "SamplerComponent",
    "afdps",
    "coil_support",
    "check_sampler_noise",
    "ddim_projection",
    "dds",
    "dds_3d",
    "diffusion_mbir",
    "dps",
    "joint_dehazing",
    "mcg",
    "red_diff",
    "sample_chunk",
    "score_pc",
    "smc",
    "tds",
]


@dataclass(frozen=True)
class SamplerComponent:
    """A configured sampler, the name it was built under and its resolved settings (for the run record).

    ``further_priors`` (name -> denoiser) are the priors of further sources sampled jointly with the job's
    prior (joint dehazing's haze): the state stacks ``[image, *further]`` along dim 1 under the product prior,
    the reconstruction is the first source and each further one is a named output."""

    name: str
    sampler: Any
    settings: dict[str, Any] | None = None
    further_priors: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> int:
        """Stacked sources the sampler draws (1 for every single-prior sampler)."""
        return 1 + len(self.further_priors)

    @property
    def num_steps(self) -> int:
        return int(self.sampler.num_steps)


def _checked(name: str, build: Callable[[], Any], settings: dict[str, Any] | None = None) -> SamplerComponent:
    try:
        return SamplerComponent(name, build(), settings)
    except ValueError as err:
        raise ConfigError(f"sampler.kind = {name!r}: {err}") from None


def _positive(**values: float) -> None:
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"sampler.{key} = {value}: must be at least 1")


def _grid(prior_meta: dict[str, Any], steps: int, grid: str, sigma_start: float | None = None):
    """The noise grid: Karras (rho 7) over the prior's trained range (from ``sigma_start`` when given: a partial
    diffusion), or the VP linear grid of the papers."""
    from .. import samplers
    from ..priors.meta import sigma_range

    if grid == "vp":
        if sigma_start is not None:
            raise ConfigError('sampler.start: a partial diffusion runs on grid = "karras" (from start_sigma), '
                              'not "vp"')
        return samplers.vp_linear(steps)
    lo, hi = sigma_range(prior_meta)
    if sigma_start is not None and not lo < sigma_start <= hi:
        raise ConfigError(f"sampler.start_sigma = {sigma_start:g}: must lie in the prior's noise range "
                          f"({lo:g}, {hi:g}]")
    return samplers.karras(steps, lo, hi if sigma_start is None else sigma_start)


def start_estimate(start: str) -> Callable[[Any], torch.Tensor] | None:
    """The sampler's ``x_init`` for ``sampler.start``: None for ``"noise"``, else the baseline of that name
    (``jobs.baselines``, default options) on the chunk's ``(y, A)`` in prior units."""
    from .baselines import BASELINES

    if start == "noise":
        return None
    build = BASELINES.get(start)
    if build is None:
        raise ConfigError(f"sampler.start = {start!r}: not 'noise' or a baseline ({', '.join(BASELINES)})")
    if getattr(build, "couples_batch", False):
        raise ConfigError(f"sampler.start = {start!r} needs every slice of the volume in one call; a 2D sampler "
                          "starts chunk by chunk (use a per-slice baseline, e.g. 'tv')")
    return lambda problem: build(problem.y, problem.A)


def _data_range(prior_meta: dict[str, Any]) -> tuple[float, float] | None:
    """The prior's ``data_range`` (None when the sidecar has none)."""
    rng = prior_meta.get("data_range")
    return None if rng is None else (float(rng[0]), float(rng[1]))


def _sigma_data(prior_meta: dict[str, Any]) -> float | None:
    from ..priors.meta import sigma_data

    return sigma_data(prior_meta)


@value_ranges(steps=_ONE, eta=_UNIT, cg_iters=_ONE, lam=_POSITIVE, gamma=_NON_NEGATIVE, start_sigma=_POSITIVE,
              chains=_ONE)
def dds(
    prior_meta: dict[str, Any],
    *,
    steps: int | None = None,
    eta: float | None = None,
    cg_iters: int = D.DDS.cg_iters,
    lam: float | None = None,
    gamma: float | None = None,
    grid: Literal["karras", "vp"] = "karras",
    clip: bool | None = None,
    start: str | None = None,
    start_sigma: float | None = None,
    chains: int | None = None,
) -> SamplerComponent:
    """Decomposed Diffusion Sampler: DDIM with CG data consistency on the Tweedie estimate (one NFE per step).

    Args:
        steps: diffusion steps (= network calls; none: the default for the prior's modality).
        eta: DDS noise mixing in [0, 1] (none: the default for the prior's modality, medrecon.defaults).
        cg_iters: CG iterations on (A^H A + rho I) x = A^H y + rho x0_hat per step.
        lam: weight of the noise-aware proximal term, rho = lam sigma_y^2 / Var[x0 | x_t] (none: the default
            for the prior's modality).
        gamma: a fixed rho instead (DDS's published setting is 1; 0 the early-stopped normal equations; none:
            the modality's default, a fixed 0 for ultrasound scan lines, else the noise-aware rho).
        grid: noise levels: karras over the prior's trained range, or vp (the paper's linear VP grid).
        clip: clamp each Tweedie estimate to the prior's data range (none: the modality's default).
        start: "noise", or a baseline (e.g. "tv", "l1_wavelet") whose reconstruction the run starts from,
            diffused to ``start_sigma`` (Come-Closer-Diffuse-Faster; all ``steps`` from there down). None: the
            modality's default.
        start_sigma: the first noise level of a run from a baseline, in prior units (none: the default).
        chains: independent chains per slice, run as one batch; the reconstruction is their mean and their
            spread the ``std``, ``lower`` and ``upper`` outputs (``samplers.IndependentChains``). Network
            evaluations per slice: ``steps x chains``. None: the modality's default.
    """
    from .. import samplers

    settings = _dds_settings(prior_meta, steps, eta, cg_iters, lam, gamma, grid, clip, start, start_sigma, chains)
    x_init = start_estimate(settings["start"])

    def build():
        sampler = samplers.dds(**_dds_options(prior_meta, settings), x_init=x_init)
        return sampler if settings["chains"] == 1 else samplers.IndependentChains(sampler, settings["chains"])

    return _checked("dds", build, settings)


def _dds_settings(prior_meta: dict[str, Any], steps: int | None, eta: float | None, cg_iters: int,
                  lam: float | None, gamma: float | None, grid: str, clip: bool | None, start: str | None = None,
                  start_sigma: float | None = None, chains: int | None = None) -> dict[str, Any]:
    """DDS's job settings with the modality's defaults filled in (``medrecon.defaults.dds_for``)."""
    chosen = D.dds_for(prior_meta.get("modality"))
    steps = chosen.steps if steps is None else steps
    chains = chosen.chains if chains is None else chains
    _positive(steps=steps, cg_iters=cg_iters, chains=chains)
    start = chosen.start if start is None else start
    return {"steps": steps, "chains": chains, "eta": chosen.eta if eta is None else eta, "cg_iters": cg_iters,
            "lam": chosen.lam if lam is None else lam, "gamma": chosen.gamma if gamma is None else gamma,
            "grid": grid, "clip": chosen.clip if clip is None else clip, "start": start,
            "start_sigma": None if start == "noise" else (chosen.start_sigma if start_sigma is None
                                                          else start_sigma)}


def _dds_options(prior_meta: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``samplers.dds`` / ``samplers.dds_3d`` from ``_dds_settings`` (``x_init`` apart)."""
    return {"steps": settings["steps"], "eta": settings["eta"], "cg_iters": settings["cg_iters"],
            "gamma": settings["gamma"], "lam": settings["lam"], "sigma_data": _sigma_data(prior_meta),
            "sigmas": _grid(prior_meta, settings["steps"], settings["grid"], settings.get("start_sigma")),
            "clip": _data_range(prior_meta) if settings["clip"] else None}


@value_ranges(steps=_ONE, eta=_UNIT, cg_iters=_ONE, lam=_POSITIVE, gamma=_NON_NEGATIVE, rho=_NON_NEGATIVE,
              tv=_NON_NEGATIVE, admm_iters=_ONE, network_batch=_ONE, tv_xy=_NON_NEGATIVE)
def dds_3d(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.DDS.steps,
    eta: float | None = None,
    cg_iters: int = D.DDS.cg_iters,
    lam: float | None = None,
    gamma: float | None = None,
    grid: Literal["karras", "vp"] = "karras",
    clip: bool | None = None,
    rho: float = D.DDS_3D.rho,
    tv: float = D.DDS_3D.tv,
    admm_iters: int = D.DDS_3D.admm_iters,
    network_batch: int = D.DDS_3D.network_batch,
    tv_xy: float = D.DDS_3D.tv_xy,
) -> SamplerComponent:
    """DDS for a whole volume from the 2D prior: every step denoises all slices, then ADMM with TV along z
    couples them (``medrecon.samplers.volume``). Every slice of the volume is sampled together (one chunk,
    whatever ``run.batch_size``; ``run.slab_slices`` splits it into overlapping slabs).

    Args:
        steps, eta, cg_iters, lam, gamma, grid, clip: as ``dds``.
        rho: ADMM penalty (0: no coupling, plain DDS).
        tv: weight of the total variation along z, in the prior's units.
        admm_iters: ADMM iterations per diffusion step.
        network_batch: slices per denoiser call (bounds the network's memory).
        tv_xy: weight of the TV within each slice, in the prior's units (0: z only, DDS's 3D variant).
    """
    from .. import samplers

    settings = _dds_settings(prior_meta, steps, eta, cg_iters, lam, gamma, grid, clip, start="noise", chains=1)
    settings.update(rho=rho, tv=tv, admm_iters=admm_iters, network_batch=network_batch, tv_xy=tv_xy)
    options = _dds_options(prior_meta, settings)
    return _checked("dds_3d", lambda: samplers.dds_3d(
        **options, rho=rho, tv=tv, admm_iters=admm_iters, network_batch=network_batch, tv_xy=tv_xy), settings)


_M = D.DIFFUSION_MBIR


@value_ranges(steps=_ONE, snr=_POSITIVE, corrector_steps=_NON_NEGATIVE, rho=_NON_NEGATIVE, tv=_NON_NEGATIVE,
              admm_iters=_ONE, cg_iters=_ONE, network_batch=_ONE, tv_xy=_NON_NEGATIVE)
def diffusion_mbir(
    prior_meta: dict[str, Any],
    *,
    steps: int = _M.steps,
    snr: float = _M.snr,
    corrector_steps: int = _M.corrector_steps,
    rho: float = _M.rho,
    tv: float = _M.tv,
    admm_iters: int = _M.admm_iters,
    cg_iters: int = _M.cg_iters,
    network_batch: int = _M.network_batch,
    final_consistency: bool = _M.final_consistency,
    tv_xy: float = _M.tv_xy,
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """DiffusionMBIR for a whole volume from the 2D prior: a prior-only predictor-corrector step on every slice,
    then ADMM with TV along z on the noisy iterate (``medrecon.samplers.volume``). Every slice of the volume is
    sampled together (one chunk, whatever ``run.batch_size``; ``run.slab_slices`` splits it into overlapping
    slabs).

    Args:
        steps: noise levels; NFE = steps * (1 + corrector_steps) (the reference: 2000 levels).
        snr: Langevin corrector signal-to-noise ratio.
        corrector_steps: Langevin steps per level.
        rho: ADMM penalty (0: no coupling; each slice its own CG on the normal equations).
        tv: weight of the total variation along z, in the prior's units.
        admm_iters: ADMM iterations per step.
        cg_iters: CG iterations of each ADMM x-update.
        network_batch: slices per denoiser call (bounds the network's memory).
        final_consistency: end with one normalised back-projection step x + A^H (y - A x) / (A^H A 1).
        tv_xy: weight of the TV within each slice (0: z only, as the reference's CT sampler).
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    from .. import samplers

    _positive(steps=steps)
    settings = {"steps": steps, "snr": snr, "corrector_steps": corrector_steps, "rho": rho, "tv": tv,
                "admm_iters": admm_iters, "cg_iters": cg_iters, "network_batch": network_batch,
                "final_consistency": final_consistency, "tv_xy": tv_xy, "grid": grid}
    return _checked("diffusion_mbir", lambda: samplers.diffusion_mbir(
        sigmas=_grid(prior_meta, steps, grid), snr=snr, corrector_steps=corrector_steps, rho=rho, tv=tv,
        admm_iters=admm_iters, cg_iters=cg_iters, network_batch=network_batch,
        final_consistency=final_consistency, tv_xy=tv_xy), settings)


@value_ranges(steps=_ONE, eta=_UNIT, iters=_ONE, lam=_POSITIVE)
def ddim_projection(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.DDS.steps,
    eta: float = D.DDS.eta,
    iters: int = 20,
    lam: float = D.DDS.lam,
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """DDIM with the proximal data consistency solved to tolerance (a hard projection onto A x = y for noiseless
    data; score-MRI-style consistency).

    Args:
        steps: diffusion steps (= network calls).
        eta: DDS noise mixing in [0, 1].
        iters: CG iterations of the measurement-space solve.
        lam: weight of the noise-aware proximal term.
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    from .. import samplers

    _positive(steps=steps, iters=iters)
    return _checked("ddim_projection", lambda: samplers.ddim_projection(
        steps, eta=eta, iters=iters, lam=lam, sigma_data=_sigma_data(prior_meta),
        sigmas=_grid(prior_meta, steps, grid)))


def _guided(name: str, prior_meta: dict[str, Any], steps: int, zeta: float, eta: float, guidance: str,
            lam: float, grid: str, mcg: bool) -> SamplerComponent:
    """DPS (``mcg=False``) or MCG on the prior's grid and ``sigma_data``."""
    from .. import samplers

    _positive(steps=steps)
    return _checked(name, lambda: samplers.DPS(
        _grid(prior_meta, steps, grid), zeta=zeta, eta=eta, guidance=guidance, lam=lam,
        sigma_data=_sigma_data(prior_meta), cg_iters=D.DPS.cg_iters, mcg=mcg))


@value_ranges(steps=_ONE, zeta=_POSITIVE, eta=_UNIT, lam=_POSITIVE)
def dps(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.DPS.steps,
    zeta: float = D.DPS.zeta,
    eta: float = 1.0,
    guidance: Literal["likelihood", "paper"] = D.DPS.guidance,  # type: ignore[assignment]
    lam: float = D.DPS.lam,
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """Diffusion Posterior Sampling: a likelihood-gradient step through the network each step.

    Args:
        steps: grid points (the paper uses 1000 VP steps).
        zeta: guidance step (1 with the likelihood guidance is the principled step).
        eta: 1 ancestral, 0 deterministic DDIM.
        guidance: likelihood (noise-aware, sigma_y^2 I + r^2 A A^H) or paper (zeta / ||y - A x0_hat||).
        lam: Tweedie-variance weight of the likelihood guidance.
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    return _guided("dps", prior_meta, steps, zeta, eta, guidance, lam, grid, mcg=False)


@value_ranges(steps=_ONE, zeta=_POSITIVE, eta=_UNIT, lam=_POSITIVE)
def mcg(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.DPS.steps,
    zeta: float = D.DPS.zeta,
    eta: float = 1.0,
    guidance: Literal["likelihood", "paper"] = D.DPS.guidance,  # type: ignore[assignment]
    lam: float = D.DPS.lam,
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """Manifold Constrained Gradient: DPS plus a proximal step towards the (noised) measurements each step.

    Args:
        steps: grid points.
        zeta: guidance step.
        eta: 1 ancestral, 0 deterministic DDIM.
        guidance: likelihood or paper (see dps).
        lam: Tweedie-variance weight.
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    return _guided("mcg", prior_meta, steps, zeta, eta, guidance, lam, grid, mcg=True)


@value_ranges(steps=_ONE, snr=_POSITIVE, corrector_steps=_NON_NEGATIVE, cg_iters=_NON_NEGATIVE, lam=_POSITIVE)
def score_pc(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.PC.steps,
    snr: float = D.PC.snr,
    corrector_steps: int = D.PC.corrector_steps,
    cg_iters: int = D.PC.cg_iters,
    lam: float = D.PC.lam,
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """Predictor-corrector (score-MRI style) driven by the noise-aware data-consistent score.

    Args:
        steps: noise levels; NFE = steps * (1 + corrector_steps).
        snr: Langevin corrector signal-to-noise ratio.
        corrector_steps: Langevin steps per level.
        cg_iters: CG iterations of the proximal data consistency.
        lam: weight of the noise-aware proximal term.
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked("score_pc", lambda: samplers.PredictorCorrector(
        _grid(prior_meta, steps, grid), snr=snr, corrector_steps=corrector_steps,
        dc=samplers.KrylovCG(cg_iters, lam, _sigma_data(prior_meta))))


@value_ranges(steps=_ONE, lr=_POSITIVE, lam=_POSITIVE)
def red_diff(
    prior_meta: dict[str, Any],
    *,
    steps: int = D.RED_DIFF.steps,
    lr: float = D.RED_DIFF.lr,
    lam: float = D.RED_DIFF.lam,
    weighting: Literal["linear", "sqrt", "square", "log", "constant", "snr"] = D.RED_DIFF.weighting,
    init: Literal["adjoint", "cg"] = "cg",
    grid: Literal["karras", "vp"] = "karras",
) -> SamplerComponent:
    """RED-Diff: Adam on the noise-weighted data term plus the denoiser-residual regulariser.

    Args:
        steps: noise levels (= network calls).
        lr: Adam learning rate in prior units.
        lam: regulariser weight (1 with snr weighting: the smoothed prior's MAP).
        weighting: w(sigma).
        init: start from A^H y or a CG pseudo-inverse.
        grid: noise levels: karras over the prior's trained range, or vp.
    """
    from .. import samplers

    _positive(steps=steps)
    return _checked("red_diff", lambda: samplers.REDDiff(
        _grid(prior_meta, steps, grid), lr=lr, lam=lam, weighting=weighting, init=init))


_FRACTION = Range(0, 1, lo_open=True)  # ESS thresholds
_LEVEL = Range(0, 1, lo_open=True, hi_open=True)  # credible levels


def _ensemble(name: str, prior_meta: dict[str, Any], build: Callable[..., Any], settings: dict[str, Any],
              steps: int, particles: int, grid: str, clip: bool | None, **options: Any) -> SamplerComponent:
    """An SMC sampler on the prior's grid (``clip``: the prior's data range; none: the modality's DDS choice)."""
    _positive(steps=steps, particles=particles)
    clip = D.dds_for(prior_meta.get("modality")).clip if clip is None else clip
    return _checked(name, lambda: build(
        particles, sigmas=_grid(prior_meta, steps, grid), clip=_data_range(prior_meta) if clip else None,
        **options), {**settings, "clip": clip})


def _tweedie_ensemble(name: str, prior_meta: dict[str, Any], particles: int, steps: int, ess_threshold: float,
                      ess_floor: float, lam: float, cg_iters: int, level: float, grid: str,
                      clip: bool | None) -> SamplerComponent:
    """``smc`` or ``tds`` (the Tweedie twist with the isotropic or the network Jacobian) on the prior's grid."""
    from ..samplers import smc as ensembles

    settings = {"particles": particles, "steps": steps, "ess_threshold": ess_threshold, "ess_floor": ess_floor,
                "lam": lam, "cg_iters": cg_iters, "level": level, "grid": grid}
    return _ensemble(name, prior_meta, getattr(ensembles, name), settings, steps, particles, grid, clip,
                     ess_threshold=ess_threshold, ess_floor=ess_floor, lam=lam, sigma_data=_sigma_data(prior_meta),
                     cg_iters=cg_iters, tol=1e-6, level=level)


@value_ranges(particles=_ONE, steps=_ONE, ess_threshold=_FRACTION, ess_floor=_UNIT, lam=_POSITIVE, cg_iters=_ONE,
              level=_LEVEL)
def smc(
    prior_meta: dict[str, Any],
    *,
    particles: int = D.SMC.particles,
    steps: int = D.SMC.steps,
    ess_threshold: float = D.SMC.ess_threshold,
    ess_floor: float = D.SMC.ess_floor,
    lam: float = D.SMC.lam,
    cg_iters: int = D.SMC.cg_iters,
    level: float = D.SMC.level,
    grid: Literal["karras", "vp"] = "karras",
    clip: bool | None = None,
) -> SamplerComponent:
    """SMC ensemble without back-propagation: particles weighted by the Tweedie twist N(y; A D(x), sigma_y^2 I +
    r^2 A A^H), moved by gradient proposals through the isotropic Jacobian; outputs the weighted mean, std and
    credible-interval maps and the ESS trace. Needs sigma_y > 0.

    Args:
        particles: particles per slice (network samples per call = particles x slices in a chunk).
        steps: noise levels (= network calls).
        ess_threshold: resample a slice's particles when their normalised ESS falls below this.
        ess_floor: temper each step's weight increment so the normalised ESS stays at or above this (0: exact
            weights; see medrecon.samplers.smc.TwistedSMC).
        lam: weight of the twist's Tweedie variance.
        cg_iters: CG iterations of the twist's measurement-space solve.
        level: credible level of the interval maps.
        grid: noise levels: karras over the prior's trained range, or vp.
        clip: clamp each Tweedie estimate to the prior's data range (none: the modality's default).
    """
    return _tweedie_ensemble("smc", prior_meta, particles, steps, ess_threshold, ess_floor, lam, cg_iters, level,
                             grid, clip)


@value_ranges(particles=_ONE, steps=_ONE, ess_threshold=_FRACTION, ess_floor=_UNIT, lam=_POSITIVE, cg_iters=_ONE,
              level=_LEVEL)
def tds(
    prior_meta: dict[str, Any],
    *,
    particles: int = D.SMC.particles,
    steps: int = D.SMC.steps,
    ess_threshold: float = D.SMC.ess_threshold,
    ess_floor: float = D.SMC.ess_floor,
    lam: float = D.SMC.lam,
    cg_iters: int = D.SMC.cg_iters,
    level: float = D.SMC.level,
    grid: Literal["karras", "vp"] = "karras",
    clip: bool | None = None,
) -> SamplerComponent:
    """Twisted diffusion sampler: the SMC ensemble with gradient proposals through the network (one
    vector-Jacobian product per step). Needs sigma_y > 0.

    Args:
        particles: particles per slice.
        steps: noise levels (= network calls, each with a backward pass).
        ess_threshold: resample when the normalised ESS falls below this.
        ess_floor: temper each step's weight increment so the normalised ESS stays at or above this (0: exact
            weights; see medrecon.samplers.smc.TwistedSMC).
        lam: weight of the twist's Tweedie variance.
        cg_iters: CG iterations of the twist's measurement-space solve.
        level: credible level of the interval maps.
        grid: noise levels: karras over the prior's trained range, or vp.
        clip: clamp each Tweedie estimate to the prior's data range (none: the modality's default).
    """
    return _tweedie_ensemble("tds", prior_meta, particles, steps, ess_threshold, ess_floor, lam, cg_iters, level,
                             grid, clip)


@value_ranges(particles=_ONE, steps=_ONE, ess_threshold=_FRACTION, ess_floor=_UNIT, cg_iters=_ONE, level=_LEVEL,
              corrector_steps=_NON_NEGATIVE, kappa=_NON_NEGATIVE)
def afdps(
    prior_meta: dict[str, Any],
    *,
    particles: int = D.SMC.particles,
    steps: int = D.SMC.steps,
    variant: Literal["ode", "sde"] = "ode",
    corrector_steps: int = D.SMC.corrector_steps,
    kappa: float = 0.0,
    ess_threshold: float = D.SMC.ess_threshold,
    ess_floor: float = D.SMC.ess_floor,
    cg_iters: int = D.SMC.cg_iters,
    level: float = D.SMC.level,
    grid: Literal["karras", "vp"] = "karras",
    clip: bool | None = None,
) -> SamplerComponent:
    """AFDPS-style ensemble: particles tilted by the likelihood at the noisy image, from the exact Gaussian start;
    ode (DDIM transport + Langevin corrector) or sde (the ancestral kernel conditioned on the likelihood).
    Needs sigma_y > 0.

    Args:
        particles: particles per slice.
        steps: noise levels.
        variant: ode or sde.
        corrector_steps: Langevin steps per level (ode; each one network call).
        kappa: anneal the likelihood width as sigma_y^2 + kappa sigma^2 (0: AFDPS's plain likelihood).
        ess_threshold: resample when the normalised ESS falls below this.
        ess_floor: temper each step's weight increment so the normalised ESS stays at or above this (0: exact
            weights; see medrecon.samplers.smc.TwistedSMC).
        cg_iters: CG iterations of the measurement-space solves.
        level: credible level of the interval maps.
        grid: noise levels: karras over the prior's trained range, or vp.
        clip: clamp each Tweedie estimate to the prior's data range (none: the modality's default).
    """
    from ..samplers import smc as ensembles

    settings = {"particles": particles, "steps": steps, "variant": variant, "corrector_steps": corrector_steps,
                "kappa": kappa, "ess_threshold": ess_threshold, "ess_floor": ess_floor, "cg_iters": cg_iters,
                "level": level, "grid": grid}
    return _ensemble("afdps", prior_meta, ensembles.afdps, settings, steps, particles, grid, clip,
                     variant=variant, corrector_steps=corrector_steps, kappa=kappa, ess_threshold=ess_threshold,
                     ess_floor=ess_floor, cg_iters=cg_iters, tol=1e-6, level=level)


_J = D.JOINT_DEHAZING


@value_ranges(steps=_ONE, sigma_start=_POSITIVE, sigma_min=_POSITIVE, lam=_NON_NEGATIVE, kappa=_NON_NEGATIVE,
              iters=_ONE, eta=_UNIT)
def joint_dehazing(
    prior_meta: dict[str, Any],
    *,
    haze_prior: str | None = None,
    steps: int = _J.steps,
    sigma_start: float = _J.sigma_start,
    sigma_min: float = _J.sigma_min,
    lam: float = _J.lam,
    kappa: float = _J.kappa,
    iters: int = _J.iters,
    eta: float = _J.eta,
) -> SamplerComponent:
    """Joint posterior sampling of tissue (the job's prior) and haze (a second prior) from one hazy measurement
    (the dehazing paper's Algorithm 1; operator.kind = "ultrasound_haze").

    Args:
        haze_prior: the haze prior's sidecar .json or .safetensors (none: the shipped us_haze).
        steps: diffusion steps (= network calls of the stacked prior).
        sigma_start: the first noise level: the run starts from the measurement, C(y) + sigma_start xi.
        sigma_min: the last non-zero noise level.
        lam: gradient step of the tissue estimate on the companded data term.
        kappa: gradient step of the haze estimate.
        iters: gradient steps per sampler step.
        eta: ancestral noise (1: the paper's stochastic sampler, 0 deterministic).
    """
    from .. import samplers
    from ..errors import InputError

    _positive(steps=steps, iters=iters)
    if prior_meta.get("modality") != "ultrasound":
        raise ConfigError(f'sampler.kind = "joint_dehazing" needs an ultrasound tissue prior (prior.kind = '
                          f'"ultrasound"), got a {prior_meta.get("modality") or "modality-less"} prior')
    if not sigma_min < sigma_start:
        raise ConfigError(f"sampler.sigma_min = {sigma_min:g}: must be below sigma_start = {sigma_start:g}")
    if haze_prior is None:
        from .ultrasound import shipped_ultrasound_prior

        haze, source = shipped_ultrasound_prior("haze"), "us_haze"
    else:
        from ..priors.checkpoint import load_prior

        haze, source = load_prior(haze_prior), haze_prior
    meta = getattr(haze, "meta", None) or {}
    if meta.get("modality") != "ultrasound":
        raise InputError(source, f"the haze prior is for {meta.get('modality')}, not ultrasound", "modality")
    settings = {"haze_prior": {"source": source, **{k: meta[k] for k in ("weights", "weights_sha256") if k in meta}},
                "steps": steps, "sigma_start": sigma_start, "sigma_min": sigma_min, "lam": lam, "kappa": kappa,
                "iters": iters, "eta": eta}
    built = _checked("joint_dehazing", lambda: samplers.joint_dehazing(
        steps, sigma_start=sigma_start, sigma_min=sigma_min, lam=lam, kappa=kappa, iters=iters, eta=eta), settings)
    return SamplerComponent(built.name, built.sampler, settings, {"haze": haze})


SAMPLERS: dict[str, Callable[..., SamplerComponent]] = {
    "dds": dds,
    "ddim_projection": ddim_projection,
    "dps": dps,
    "mcg": mcg,
    "score_pc": score_pc,
    "red_diff": red_diff,
    "smc": smc,
    "tds": tds,
    "afdps": afdps,
    "joint_dehazing": joint_dehazing,
    "dds_3d": dds_3d,
    "diffusion_mbir": diffusion_mbir,
}


ENSEMBLES = ("smc", "tds", "afdps")


def check_sampler_sources(component: SamplerComponent, problem_info: dict[str, Any], operator_kind: str) -> None:
    """Refuse a sampler and an operator that disagree on the number of stacked sources (joint dehazing on scan
    lines, DDS on the haze model), before any compute."""
    sources = list(problem_info.get("sources", ["image"]))
    if len(sources) != component.sources:
        need = ('a joint sampler (sampler.kind = "joint_dehazing")' if len(sources) > 1
                else "a single-source sampler (dds, dps, ...)")
        raise ConfigError(f"sampler.kind = {component.name!r} draws {component.sources} source(s) but operator.kind = "
                          f"{operator_kind!r} measures {len(sources)} ({', '.join(sources)}); it needs {need}")


def check_sampler_noise(component: SamplerComponent, sigma_y: float) -> None:
    """Refuse ``sigma_y = 0`` for the SMC ensembles (their weights need the likelihood's density), before any
    compute."""
    if component.name in ENSEMBLES and not sigma_y > 0:
        raise ConfigError(
            f"run.sigma_y = {sigma_y:g}: sampler.kind = {component.name!r} weighs particles by the likelihood, "
            "which needs measurement noise sigma_y > 0 (set run.sigma_y, or 'auto' on data with noise)")


def coil_support(op: Any) -> torch.Tensor | None:
    """``(b, H, W)`` (or ``(1, H, W)`` for shared maps) mask of the pixels some coil sees, for an operator with
    coil maps (``op.coils.smaps``); None when every pixel is seen or the operator has none. ESPIRiT maps vanish
    outside the object (their eigenvalue crop), where no measurement constrains the image and SENSE's minimum-norm
    solution is zero: the samplers hold the prior's estimate at zero there too."""
    coils = getattr(op, "coils", None)
    smaps = getattr(coils, "smaps", None)
    if not isinstance(smaps, torch.Tensor):
        return None
    seen = (smaps.abs() ** 2).sum(dim=-3) > 0
    if bool(seen.all()):
        return None
    return seen if seen.ndim == 3 else seen.unsqueeze(0)


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
) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]]:
    """Run one chunk ``y`` ``(b, *range)`` to the end; returns ``x`` ``(b, H, W)``, its timings and the sampler's
    further outputs (the SMC ensembles' ``std``, ``lower``, ``upper`` maps ``(b, H, W)``, ``ess`` ``(b, steps +
    1)`` and ``resamples`` ``(b,)``; a joint sampler's further sources ``(b, H, W)`` by name; empty for the other
    samplers).

    ``checkpoint`` is a folder: an existing checkpoint there is resumed (state and generator), and a new one
    is written every ``checkpoint_every`` steps.
    """
    from .. import samplers

    if component.further_priors:
        from ..priors.stacked import StackedDenoiser

        prior = StackedDenoiser([prior, *(p.to(y.device) for p in component.further_priors.values())])
    problem = samplers.InverseProblem(op, y, sigma_y, coil_support(op))
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
    x, outputs = result.x, dict(result.outputs)
    if component.further_priors:  # stacked sources: the first is the reconstruction, the others named outputs
        outputs.update({name: x[:, k + 1] for k, name in enumerate(component.further_priors)})
        x = x[:, 0]
    timing = {
        "nfe": result.nfe,
        "sampler_s": result.seconds,
        "network_s": result.network_seconds,
        "step_s": [round(s.seconds, 6) for s in result.steps],
    }
    return x, timing, outputs
