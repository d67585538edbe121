"""``medrecon plan-mask JOB [--set section.key=value ...] [--out DIR]``."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  medrecon plan-mask fastmri_plan_4x.toml --out plans/4x
  medrecon plan-mask job.toml --set plan.mode='"population"' --set plan.chains=8
  medrecon run fastmri_dds_4x.toml --set operator.mask='"planned"' --set operator.mask_file='"plans/4x/mask.npy"'

The job is a reconstruction job (fully sampled data) plus an optional [plan] table: mode (adaptive | population),
budget, center_lines, chains, per_round, start, stop, kernel_sigma, sign, diversity, width, candidate_views,
compare. The operator's own mask (or views) is the fixed mask the plan is compared with. Writes mask.npy (bool,
(S, W) per slice or (1, W) shared; CT: over plan.candidate_views angles), mask.json (provenance), report.png and
record.json.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .run_command import add_job_arguments

    parser.epilog = EXAMPLES
    add_job_arguments(parser, "output folder (default: the job's run.out)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from .planning import plan_job
    from .run import prepare_job
    from .spec import load_spec

    spec = load_spec(args.job, args.overrides)
    job = prepare_job(spec)
    result = plan_job(spec, out=args.out, progress=not args.quiet, prepared=job)
    plan = result.record["plan"]
    print(f"planned {plan['mode']} {plan['candidates']}: {plan['budget']} of {result.mask.shape[-1]} in "
          f"{len(result.record['rounds'])} rounds, {result.record['network_calls']} network calls, "
          f"{result.record['timings']['planning_s']:.1f} s")
    for name, m in result.metrics.items():
        print(f"  {name:<8} PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    print(f"wrote {len(result.files)} files to {result.out}/")
    return 0
