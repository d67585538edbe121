"""``medrecon bench posterior``: how far each sampler is from the exact posterior, on closed-form problems.

Gaussian-mixture priors with their exact denoisers and linear-Gaussian measurements (``sigma_y = 0.05``):
``equal-d8`` has two equal, well-separated posterior modes (the separation lies in the null space of ``A``),
``unequal-d32`` two modes of posterior weight 0.3 / 0.7, ``one-d64`` a single Gaussian. Every sampler draws
``N`` samples on one 200-level Karras grid (the SMC ensembles: ``P`` particles in ``N / P`` replicas, pooled
with their weights). Columns: the largest error of the mean in posterior standard deviations, the range of the
variance ratios over coordinates, the posterior weight of mode 0 (exact in brackets), and the sliced W2
distance to an exact sample of the same size divided by the distance between two exact samples.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

__all__ = ["CASES", "add_arguments", "main", "mixture_case", "posterior_moments", "sampler_table"]

F64 = torch.float64
SIGMA_Y = 0.05
CASES = {"equal-d8": (8, 4, 0.5, 0), "unequal-d32": (32, 16, 0.3, 1), "one-d64": (64, 32, 1.0, 2)}


def mixture_case(d: int, m: int, target_weight: float, seed: int, sigma_y: float = SIGMA_Y):
    """``(prior, A, y, posterior)``: a two-component mixture separated along a direction ``u`` by 4 units.

    ``target_weight = 0.5`` puts ``u`` in the null space of ``A`` (two equal, well-separated posterior modes);
    otherwise ``u`` is partly observed and ``y`` is chosen on the line between the modes so that the posterior
    weight of component 0 is ``target_weight``; ``target_weight = 1`` is a single Gaussian."""
    from medrecon.priors.gaussian import GaussianMixtureDenoiser

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, d, generator=g, dtype=F64) / math.sqrt(d)
    null = torch.linalg.svd(a).Vh[-1]
    u = null if target_weight == 0.5 else (null + 0.4 * a[0] / a[0].norm()) / math.sqrt(1.16)
    centre = 0.3 * torch.randn(d, generator=g, dtype=F64)
    base = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
    cov = 0.2 * base @ base.T + 0.05 * torch.eye(d, dtype=F64)
    if target_weight == 1:
        prior = GaussianMixtureDenoiser(torch.ones(1, dtype=F64), centre[None], cov[None])
    else:
        prior = GaussianMixtureDenoiser(torch.tensor([0.5, 0.5], dtype=F64),
                                        torch.stack([centre + 2.0 * u, centre - 2.0 * u]), torch.stack([cov, cov]))
    noise = sigma_y * torch.randn(1, m, generator=g, dtype=F64)
    best = None
    for t in torch.linspace(-1, 1, 401, dtype=F64):
        y = (centre + 2.0 * t * u) @ a.T + noise
        post = prior.posterior(a, y, sigma_y)
        gap = abs(float(post.weights[0, 0]) - min(target_weight, 1.0))
        if best is None or gap < best[0]:
            best = (gap, y, post)
    _, y, post = best
    return prior, a, y, post


def posterior_moments(post) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(n,)`` and marginal variances ``(n,)`` of a ``MixturePosterior`` (first measurement)."""
    w = post.weights[0]
    mean = post.mean[0]
    second = sum(w[k] * (post.covs[k] + torch.outer(post.means[0, k], post.means[0, k])) for k in range(len(w)))
    return mean, (second - torch.outer(mean, mean)).diag()


def prior_sigma_data(prior) -> float:
    """The prior's data scale as a sidecar states it: the root mean marginal variance."""
    means = torch.stack([c.mean for c in prior.components])
    mix = (prior.weights[:, None] * means).sum(0)
    var = sum(w * (c.cov.diag() + (c.mean - mix) ** 2) for w, c in zip(prior.weights, prior.components))
    return float(var.mean().sqrt())


def exact_draws(post, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` exact posterior draws ``(n, d)``."""
    labels = torch.multinomial(post.weights[0], n, replacement=True, generator=g)
    draws = torch.stack([post.means[0, k] + torch.randn(n, post.covs.shape[-1], generator=g, dtype=F64)
                         @ torch.linalg.cholesky(post.covs[k]).T for k in range(post.covs.shape[0])], 1)
    return draws[torch.arange(n), labels]


def sliced_w2(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Sliced 2-Wasserstein distance between equal-size samples ``(n, d)`` along unit ``directions``."""
    pa, pb = (a @ directions.T).sort(0).values, (b @ directions.T).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


def _samplers(steps: int, particles: int, sd: float) -> dict[str, Callable[[], object]]:
    from medrecon import defaults as D
    from medrecon import samplers as S
    from medrecon.samplers import smc as E

    grid = S.karras(steps, 0.002, 80.0)
    return {
        "DDS (eta 0.85, 5 CG)": lambda: S.dds(sigmas=grid, sigma_data=sd),
        "DDIM + projection": lambda: S.ddim_projection(sigmas=grid, sigma_data=sd),
        "DPS (likelihood, zeta 1)": lambda: S.DPS(grid, sigma_data=sd),
        "DPS (paper, zeta 1)": lambda: S.DPS(grid, guidance="paper"),
        "MCG (likelihood)": lambda: S.DPS(grid, sigma_data=sd, mcg=True),
        "predictor-corrector": lambda: S.PredictorCorrector(grid, dc=S.KrylovCG(5, 1.0, sd)),
        "RED-Diff": lambda: S.REDDiff(grid),
        f"SMC (P={particles})": lambda: E.smc(particles, sigmas=grid, sigma_data=sd),
        f"TDS (P={particles})": lambda: E.tds(particles, sigmas=grid, sigma_data=sd),
        f"SMC, jobs' ESS floor and lam (P={particles})": lambda: E.smc(
            particles, sigmas=grid, sigma_data=sd, ess_floor=D.SMC.ess_floor, lam=D.SMC.lam),
        f"AFDPS ode (P={particles})": lambda: E.afdps(particles, sigmas=grid, corrector_steps=3),
    }


def _row(name: str, make, case, n: int, seed: int) -> dict:
    from medrecon.samplers import InverseProblem, run
    from medrecon.samplers.smc import gather_particles, systematic_indices
    from operators import MatrixOperator

    prior, a, y, post = case
    sampler = make()
    per = int(getattr(sampler, "samples_per_image", 1))
    replicas = max(1, n // per)
    problem = InverseProblem(MatrixOperator(a), y.expand(replicas, -1).clone(), SIGMA_Y)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    result = run(sampler, problem, prior, g, progress=False)
    seconds = time.perf_counter() - t0
    d = a.shape[1]
    if per > 1:
        state = result.state
        idx = systematic_indices(state.log_weights, g)
        x = gather_particles(state.x, idx).reshape(-1, d)
        w = torch.softmax(state.log_weights, 0)
        weighted = (w[..., None] * state.x)
        mean_est = weighted.sum(0).mean(0)
        var_est = (w[..., None] * (state.x - mean_est) ** 2).sum(0).mean(0)
        labels = prior.classify(state.x.reshape(-1, d)).reshape(state.x.shape[:2])
        w0 = float((w * (labels == 0)).sum(0).mean())
    else:
        x = result.x
        mean_est, var_est = x.mean(0), x.var(0)
        w0 = float((prior.classify(x) == 0).to(F64).mean())
    mean, var = posterior_moments(post)
    ratio = var_est / var
    dirs = torch.randn(64, d, generator=g, dtype=F64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    ref = exact_draws(post, x.shape[0], g)
    between = sum(sliced_w2(exact_draws(post, x.shape[0], g), ref, dirs) for _ in range(4)) / 4
    return {
        "sampler": name,
        "mean_err_sd": float(((mean_est - mean).abs() / var.sqrt()).max()),
        "var_ratio": (float(ratio.min()), float(ratio.max())),
        "w0": w0,
        "w0_exact": float(post.weights[0, 0]),
        "sw2_ratio": sliced_w2(x, ref, dirs) / between,
        "seconds": seconds,
    }


def sampler_table(case_name: str, n: int = 512, steps: int = 200, particles: int = 256,
                  only: list[str] | None = None) -> list[dict]:
    """One row per sampler on the named case (``CASES``)."""
    case = mixture_case(*CASES[case_name])
    rows = []
    for name, make in _samplers(steps, particles, prior_sigma_data(case[0])).items():
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        try:
            rows.append(_row(name, make, case, n, seed=1))
        except (FloatingPointError, RuntimeError, ValueError) as err:
            rows.append({"sampler": name, "error": f"{type(err).__name__}: {err}"[:80]})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--samples", type=int, default=512, help="samples (particles x replicas) per sampler")
    parser.add_argument("--steps", type=int, default=200, help="noise levels of the common grid")
    parser.add_argument("--particles", type=int, default=256, help="particles per replica of the SMC ensembles")
    parser.add_argument("--only", default="", help="comma-separated name fragments of the samplers to run")


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    lines = []
    steps = 40 if args.quick else args.steps
    for case in args.cases.split(","):
        rows = sampler_table(case, args.samples, steps, args.particles, [o for o in args.only.split(",") if o])
        lines += [f"\n**{case}** (sigma_y = {SIGMA_Y}, {args.samples} samples, {steps} levels)\n",
                  "| sampler | max mean error / sd | variance ratio | weight of mode 0 (exact) | SW2 / exact-exact "
                  "| s |", "|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['sampler']} | {r['error']} | | | | |")
                continue
            lo, hi = r["var_ratio"]
            lines.append(f"| {r['sampler']} | {r['mean_err_sd']:.2f} | {lo:.2f}-{hi:.2f} | {r['w0']:.2f} "
                         f"({r['w0_exact']:.2f}) | {r['sw2_ratio']:.2f} | {r['seconds']:.1f} |")
        print("\n".join(lines[-(len(rows) + 3):]), flush=True)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0
