"""Twisted sequential Monte Carlo over the reverse diffusion: ``P`` weighted particles per image whose weighted
ensemble targets the posterior ``p(x0 | y)`` of the model's own reverse chain, exactly as ``P`` grows.

**The targets.** With the model's Gaussian reverse kernel ``M(x' | x) = N(m(x), c^2 I)`` (``ddim_transition``
from ``x0 = D(x, sigma)``; ``eta = 1`` is DDPM's ancestral kernel) and a twist ``psi_sigma`` (``twists``), the
intermediate target at step ``k`` is ``p_k(x) psi_k(x)`` along the path of the chain; the last twist is the
likelihood, so the last target is ``p(x0) p(y | x0)`` for the chain's ``p(x0)``.

**The weights.** A particle moved by a proposal ``Q(x' | x)`` gains the log-weight

    ``log M(x' | x) + log psi'(x') - log psi(x) - log Q(x' | x)``

(TDS, Wu et al. 2023). Proposals:

- ``prior``: ``Q = M`` (the bootstrap filter); the weight is the twist ratio.
- ``gradient``: ``Q = N(m + c^2 grad log psi(x), c^2 I)`` (TDS; AFDPS's SDE drift ``-v^2 grad mu_y``); exact
  weights for any twist, however its CG solves are truncated.
- ``conjugate`` (Gaussian twists): ``Q(x' | x) ∝ M(x' | x) psi'(x')`` drawn exactly by Matheron's rule, with
  the weight ``log int M psi' - log psi(x)``, one measurement-space CG solve; exact up to the CG tolerance.

The ``ode`` predictor (AFDPS's ODE variant) moves particles by the deterministic DDIM step and reweights by the
twist ratio (the change of the tilt along the prior's flow, exact in the continuum limit), followed by
unadjusted Langevin corrector steps on ``p_sigma psi_sigma``.

Resampling is systematic, per image, whenever the normalised ESS falls below ``ess_threshold`` (1: every step).
The start is either the chain's ``N(0, (sigma_0^2 + init_var) I)`` weighted by ``psi_0`` or, for a Gaussian twist,
an exact draw from ``N(0, (sigma_0^2 + init_var) I) psi_0`` (AFDPS's Gaussian start).

The state holds ``x`` ``(P, B, *image)``, ``x0`` (its Tweedie estimates), ``log_weights`` ``(P, B)`` and, in
``aux``, the twist's value (and gradient), the ESS trace ``(steps + 1, B)`` and the resampling count ``(B,)``, so
a checkpoint resumes bit-identically.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import torch

from medrecon.priors.base import Denoiser
from operators import inner, power_norm

from ..ddim import clip_to_range
from ..problem import InverseProblem
from ..state import Sampler, State
from ..transitions import GaussianStep, ddim_transition, draw, gaussian_like, log_density
from .particles import ess_fraction, gather_particles, systematic_indices, tempering_exponent, weighted_summary
from .twists import Twist

__all__ = ["TwistedSMC"]

Proposal = Literal["prior", "gradient", "conjugate"]


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim)).to(like.real.dtype)


class TwistedSMC(Sampler):
    """Twisted SMC with ``particles`` per image (see the module docstring for the algorithm).

    Args:
        sigmas: descending grid ending with 0.
        particles: ``P`` particles per image (at least 1).
        twist: ``MeasurementTwist`` or ``TweedieTwist``.
        proposal: ``prior``, ``gradient`` or ``conjugate`` (Gaussian twists only).
        predictor: ``sde`` (the stochastic kernel with ``eta``) or ``ode`` (deterministic DDIM transport with
            ``corrector_steps`` Langevin steps; proposal must be ``prior``).
        eta: DDIM stochasticity of the kernel, in (0, 1] for ``sde`` (0 would make the proposal deterministic).
        ess_threshold: resample an image's particles when their normalised ESS falls below this, in (0, 1].
        start: ``prior`` (weighted chain start) or ``exact`` (Gaussian twists: exact draw of the first target).
        corrector_steps: Langevin steps per level after the move (each one network call).
        corrector_step: Langevin step as a fraction of ``1 / L``, ``L = 1 / sigma^2 + ||A||^2 / (sigma_y^2 +
            v(sigma) ||A||^2)`` (the curvature bound of the target), in (0, 1].
        level: credible level of the interval maps.
        clip: clamp every Tweedie estimate to this range (the prior's data range); None leaves it.
        network_batch: evaluate the denoiser on at most this many particles at a time (None: all at once).
        ess_floor: in [0, 1]; each step's log-weight increment is multiplied by the largest ``alpha`` in [0, 1]
            whose increment alone keeps a normalised ESS at or above it (``tempering_exponent``; the
            ``weight_exponent`` trace in the outputs), so one step never costs more than ``1 - ess_floor`` of the
            ESS; the weights still accumulate over steps and trigger resampling. 0 (the
            default) never tempers: the exact sampler. Where the likelihood carries far more information than
            ``P`` particles can weigh (image-sized problems: log-weight spreads of hundreds of nats per step), the
            exponent falls towards 0 and the ensemble becomes ``P`` independent guided chains, whose spread is
            the uncertainty estimate; the trace says which regime a run was in.
    """

    def __init__(
        self,
        sigmas: torch.Tensor,
        particles: int,
        twist: Twist,
        proposal: Proposal = "gradient",
        predictor: Literal["sde", "ode"] = "sde",
        eta: float = 1.0,
        ess_threshold: float = 0.5,
        start: Literal["prior", "exact"] = "prior",
        corrector_steps: int = 0,
        corrector_step: float = 0.5,
        level: float = 0.9,
        clip: tuple[float, float] | None = None,
        network_batch: int | None = None,
        init_var: float = 1.0,
        ess_floor: float = 0.0,
    ):
        super().__init__(sigmas, init_var)
        if not 0 <= ess_floor <= 1:
            raise ValueError(f"ess_floor must lie in [0, 1] (0: exact weights), got {ess_floor}")
        if isinstance(particles, bool) or not isinstance(particles, int) or particles < 1:
            raise ValueError(f"particles must be an integer of at least 1, got {particles!r}")
        if not 0 < ess_threshold <= 1:
            raise ValueError(f"ess_threshold must lie in (0, 1], got {ess_threshold}")
        if proposal not in ("prior", "gradient", "conjugate"):
            raise ValueError(f"proposal must be 'prior', 'gradient' or 'conjugate', got {proposal!r}")
        if predictor not in ("sde", "ode"):
            raise ValueError(f"predictor must be 'sde' or 'ode', got {predictor!r}")
        if start not in ("prior", "exact"):
            raise ValueError(f"start must be 'prior' or 'exact', got {start!r}")
        if (proposal == "conjugate" or start == "exact") and not twist.gaussian:
            raise ValueError(f"{type(twist).__name__} is not Gaussian in x: use proposal 'gradient' and start 'prior'")
        if predictor == "sde" and not 0 < eta <= 1:
            raise ValueError(f"eta = {eta} makes the proposal deterministic; its weights need a density (eta in "
                             "(0, 1], or predictor 'ode')")
        if predictor == "ode" and proposal != "prior":
            raise ValueError("the ode predictor moves particles deterministically: proposal must be 'prior'")
        if corrector_steps < 0 or not 0 < corrector_step <= 1:
            raise ValueError("corrector_steps must be >= 0 and corrector_step in (0, 1]")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        if network_batch is not None and network_batch < 1:
            raise ValueError(f"network_batch must be at least 1, got {network_batch}")
        self.particles, self.twist, self.proposal, self.predictor = particles, twist, proposal, predictor
        self.eta, self.ess_threshold, self.start = (eta if predictor == "sde" else 0.0), ess_threshold, start
        self.corrector_steps, self.corrector_step, self.level = corrector_steps, corrector_step, level
        self.clip, self.network_batch, self.ess_floor = clip, network_batch, ess_floor
        self.requires_grad = twist.network_gradient and (proposal == "gradient" or corrector_steps > 0)

    @property
    def samples_per_image(self) -> int:
        """Denoiser samples per image per call: the driver chunks images, never one image's particles."""
        return self.particles

    # -- the pieces ----------------------------------------------------------------------------------------
    def _needs_gradient(self) -> bool:
        return self.proposal == "gradient" or self.corrector_steps > 0

    def _denoise(self, denoiser: Denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
        flat = x.reshape((-1,) + x.shape[2:])
        size = self.network_batch or flat.shape[0]
        out = torch.cat([denoiser(flat[i:i + size], sigma) for i in range(0, flat.shape[0], size)], 0)
        return clip_to_range(out, self.clip).reshape(x.shape)

    def _evaluate(self, denoiser, x, sigma, problem):
        """``(x0, log psi, grad log psi)`` at ``x`` (``x0 = x`` at ``sigma = 0``), all detached."""
        gradient = self._needs_gradient() and sigma > 0
        if sigma == 0:
            log_psi, grad = self.twist(x, x, 0.0, problem, False)
            return x, log_psi, grad
        if self.twist.network_gradient and gradient:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                x0 = problem.restrict(self._denoise(denoiser, xg, sigma))
                log_psi, grad = self.twist(xg, x0, sigma, problem, True)
            return x0.detach(), log_psi.detach(), grad.detach()
        with torch.no_grad():
            x0 = problem.restrict(self._denoise(denoiser, x, sigma))
        log_psi, grad = self.twist(x, x0, sigma, problem, gradient)
        return x0, log_psi, grad

    def _conditioned(
        self, mean: torch.Tensor, var: float, sigma: float, problem: InverseProblem, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A draw of ``N(mean, var I) psi_sigma(x)`` (Matheron's rule) and ``log int N(x; mean, var) psi_sigma``
        (up to a constant), for the Gaussian twist."""
        A, nb = problem.A, problem.batch_dims(mean)
        v = self.twist.extra_var(sigma)
        if var == 0:
            log_psi, _ = self.twist(mean, mean, sigma, problem, False)
            return mean, log_psi
        prior_draw = mean + math.sqrt(var) * gaussian_like(mean, generator)
        noise = float(problem.sigma_y) * gaussian_like(problem.residual(mean), generator)
        if v > 0:
            noise = noise + math.sqrt(v) * A(gaussian_like(mean, generator))
        residuals = torch.stack([problem.residual(mean), problem.residual(prior_draw) - noise])
        u = problem.whiten(residuals, v + var, nb + 1, self.twist.cg_iters, self.twist.tol)
        log_marginal = -0.5 * inner(residuals[0], u[0], nb)
        return prior_draw + var * A.adjoint(u[1]), log_marginal

    def _curvature(self, state: State, problem: InverseProblem, generator: torch.Generator) -> float:
        if "op_norm2" not in state.aux:
            start = gaussian_like(problem.adjoint_y[:1], generator)
            state.aux["op_norm2"] = power_norm(problem.A.normal, start, iters=30).reshape(1)
        return float(state.aux["op_norm2"])

    def _reweight(self, log_w: torch.Tensor, increment, aux: dict, k: int) -> torch.Tensor:
        """``log_w + alpha * increment``: ``alpha = 1`` (exact), or the ESS-floor exponent (recorded in
        ``aux["weight_exponent"][k]``)."""
        if self.ess_floor == 0 or not torch.is_tensor(increment):
            return log_w + increment
        increment = increment.expand_as(log_w)
        alpha = tempering_exponent(increment, self.ess_floor)
        if "weight_exponent" in aux:  # states saved before the exponent existed carry none
            aux["weight_exponent"] = aux["weight_exponent"].clone()
            aux["weight_exponent"][k] = alpha.to(aux["weight_exponent"].dtype)
        return log_w + alpha.to(log_w.dtype)[None, :] * increment

    def _resample(self, state: State, generator: torch.Generator) -> State:
        low = ess_fraction(state.log_weights) < self.ess_threshold
        if self.particles == 1 or not bool(low.any()):
            return state
        idx = systematic_indices(state.log_weights, generator)
        keep = torch.arange(self.particles, device=idx.device)[:, None].expand_as(idx)
        idx = torch.where(low[None, :], idx, keep)
        aux = dict(state.aux)
        for key in ("log_twist", "twist_grad"):
            if key in aux:
                aux[key] = gather_particles(aux[key], idx)
        aux["resamples"] = aux["resamples"] + low.to(aux["resamples"].dtype)
        log_w = torch.where(low[None, :], torch.zeros_like(state.log_weights), state.log_weights)
        return State(gather_particles(state.x, idx), gather_particles(state.x0, idx), log_w, state.step, aux)

    # -- the sampler interface -------------------------------------------------------------------------------
    def init(self, problem, denoiser, generator, shape=None, dtype=None, device=None) -> State:
        problem = self._require(problem)
        template = self._template(problem, shape, dtype, device)
        if self.twist.extra_var(0.0) == 0 and not problem.sigma_y > 0:
            raise ValueError("the SMC weights need the likelihood's density: sigma_y must be positive")
        particles = template.expand((self.particles,) + template.shape)
        var = self.sigmas[0] ** 2 + self.init_var
        if self.start == "exact":
            x, _ = self._conditioned(torch.zeros_like(particles), var, self.sigmas[0], problem, generator)
        else:
            x = math.sqrt(var) * gaussian_like(torch.empty_like(particles), generator)
        b = template.shape[0]
        real = template.real.dtype
        aux = {
            "ess": torch.ones(self.num_steps + 1, b, dtype=real, device=template.device),
            "resamples": torch.zeros(b, dtype=real, device=template.device),
            "weight_exponent": torch.ones(self.num_steps + 1, b, dtype=real, device=template.device),
        }
        return State(x=x, x0=torch.zeros_like(x), log_weights=x.new_zeros((self.particles, b), dtype=real), aux=aux)

    def step(self, state: State, problem, denoiser, generator) -> State:
        problem = self._require(problem)
        k = state.step
        sigma, sigma_next = self.sigmas[k], self.sigmas[k + 1]
        if "log_twist" not in state.aux:  # first step: evaluate at the start (one network call)
            x0, log_psi, grad = self._evaluate(denoiser, state.x, sigma, problem)
            aux = {**state.aux, "log_twist": log_psi, **({"twist_grad": grad} if grad is not None else {})}
            log_w = state.log_weights
            if self.start == "prior":
                log_w = self._reweight(log_w, log_psi, aux, 0)
            aux["ess"] = aux["ess"].clone()
            aux["ess"][0] = ess_fraction(log_w)
            state = State(state.x, x0, log_w, k, aux)
        state = self._resample(state, generator)
        x, x0, log_w = state.x, state.x0, state.log_weights
        log_psi = state.aux["log_twist"]
        kernel = ddim_transition(x0, (x - x0) / sigma, sigma, sigma_next, self.eta)
        if self.proposal == "conjugate":
            x_next, gain = self._conditioned(kernel.mean, kernel.std**2, sigma_next, problem, generator)
        elif self.proposal == "gradient" and kernel.std > 0:
            shifted = GaussianStep(kernel.mean + kernel.std**2 * state.aux["twist_grad"], kernel.std)
            x_next = draw(shifted, generator)
            nb = problem.batch_dims(x_next)
            gain = log_density(kernel, x_next, nb) - log_density(shifted, x_next, nb)
        else:
            x_next, gain = draw(kernel, generator), 0.0
        x0_next, log_psi_next, grad_next = self._evaluate(denoiser, x_next, sigma_next, problem)
        if self.proposal != "conjugate":
            gain = gain + log_psi_next
        aux = dict(state.aux)
        log_w = self._reweight(log_w, gain - log_psi, aux, k + 1)
        if not bool(torch.isfinite(log_w).all()):
            raise FloatingPointError(
                f"SMC weights became non-finite at step {k} (sigma = {sigma:.4g}): the proposal is unstable at "
                "this step size (use proposal 'conjugate', more steps, or a wider twist)")
        if sigma_next > 0:
            for _ in range(self.corrector_steps):
                x_next = self._langevin(state, x_next, x0_next, grad_next, sigma_next, problem, generator)
                x0_next, log_psi_next, grad_next = self._evaluate(denoiser, x_next, sigma_next, problem)
        aux["log_twist"] = log_psi_next
        if grad_next is not None:
            aux["twist_grad"] = grad_next
        aux["ess"] = aux["ess"].clone()
        aux["ess"][k + 1] = ess_fraction(log_w)
        return State(x_next, x0_next, log_w, k + 1, aux)

    def retarget(self, state: State, problem: InverseProblem, denoiser: Denoiser) -> State:
        """The same particles under new measurements (more lines acquired): the target changes from
        ``p psi_old`` to ``p psi_new``, so each log-weight gains ``log psi_new - log psi_old`` (one network call);
        the cached operator norm is dropped."""
        aux = {k: v for k, v in state.aux.items() if k != "op_norm2"}
        if "log_twist" not in aux:  # before the first step: the start is weighted under the new problem then
            return replace(state, aux=aux)
        x0, log_psi, grad = self._evaluate(denoiser, state.x, self.sigmas[state.step], problem)
        log_w = state.log_weights + log_psi - aux["log_twist"]
        aux["log_twist"] = log_psi
        if grad is not None:
            aux["twist_grad"] = grad
        return State(state.x, x0, log_w, state.step, aux)

    def _langevin(self, state, x, x0, grad, sigma, problem, generator) -> torch.Tensor:
        """One unadjusted Langevin step on ``p_sigma psi_sigma`` with a step below its curvature bound."""
        norm2 = self._curvature(state, problem, generator)
        v = self.twist.extra_var(sigma)
        curvature = 1.0 / sigma**2 + norm2 / (float(problem.sigma_y) ** 2 + v * norm2)
        delta = self.corrector_step / curvature
        score = (x0 - x) / sigma**2 + grad
        return x + delta * score + math.sqrt(2 * delta) * gaussian_like(x, generator)

    def result(self, state: State) -> torch.Tensor:
        """The weighted posterior mean ``(B, *image)``."""
        w = torch.softmax(state.log_weights.to(torch.float64), dim=0)
        return (_bcast(w, state.x).to(state.x.dtype) * state.x).sum(0)

    def outputs(self, state: State) -> dict[str, torch.Tensor]:
        """Per image: ``std``, ``lower``, ``upper`` maps (``weighted_summary``), the ESS trace ``(B, steps + 1)``
        and the number of resampling events ``(B,)``."""
        summary = weighted_summary(state.x, state.log_weights, self.level)
        return {
            "std": summary["std"],
            "lower": summary["lower"],
            "upper": summary["upper"],
            "ess": state.aux["ess"].mT.contiguous(),
            "resamples": state.aux["resamples"],
            **({"weight_exponent": state.aux["weight_exponent"].mT.contiguous()}
               if "weight_exponent" in state.aux else {}),
        }
