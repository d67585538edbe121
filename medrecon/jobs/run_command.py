"""``medrecon run JOB [--set section.key=value ...] [--resume] [--out DIR]``."""

from __future__ import annotations

import argparse

from .report import format_metrics_table

EXAMPLES = """examples:
  medrecon run job.toml
  medrecon run job.toml --set sampler.steps=20 --set operator.acceleration=8 --out runs/8x
  medrecon run job.toml --set 'run.baselines=["zero_filled", "l1_wavelet"]'
  medrecon run job.toml --resume --out runs/8x      # continue a killed run from its last finished slice

--resume prints what it continues from (slices done, the checkpointed step) and records it in record.json
(resumed_from); on a folder holding a finished run of the same job it says there is nothing left to do and
exits 0; a finished run of a different job is refused (exit 2).

A shipped example job runs by its bare name when no such local file exists (`medrecon run fastmri_dds_4x.toml`);
`medrecon list jobs` names them, `medrecon list` shows every option.
"""


def add_job_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The arguments ``run`` and ``check`` share: the job file, ``--set`` overrides and ``--out``."""
    parser.add_argument(
        "job", help="job file (.toml, or .yaml/.yml with PyYAML installed), or a shipped job's name"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one option; the value is a TOML literal (repeatable)",
    )
    parser.add_argument("--out", default=None, help=out_help)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_job_arguments(parser, "output folder (default: the job's run.out)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an unfinished run of the same job in the output folder",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .acquisition import describe_acquisition
    from .lock import OutputLock
    from .resume import describe_progress, finished_run
    from .run import check_output_dir, prepare_job, run_job
    from .spec import load_spec

    spec = load_spec(args.job, args.overrides)
    out = Path(args.out if args.out is not None else spec.run.out)
    if args.resume and finished_run(out, spec.hash) is not None:
        print(f"nothing to resume: {out} holds a finished run of this job (record.json); "
              "rerun without --resume to compute it again")
        return 0
    OutputLock(check_output_dir(out)).check()  # a folder in use fails before the data are read
    job = prepare_job(spec)
    print(f"acquires  {describe_acquisition(job.problem.info)}")
    result = run_job(
        spec,
        out=out,
        resume=args.resume,
        progress=not args.quiet,
        prepared=job,
        on_resume=lambda info: print(describe_progress(info), flush=True),
    )
    if result.metrics:
        print(format_metrics_table(result.metrics, result.record["timings"], spec.sampler.kind))
    warning = result.record.get("uncertainty", {}).get("warning")
    if warning:
        print(f"warning: {warning}", flush=True)
    total = result.record["timings"]["total_s"]
    print(f"wrote {len(result.files)} files to {result.out}/ in {total:.1f} s (record.json has the details)")
    return 0
