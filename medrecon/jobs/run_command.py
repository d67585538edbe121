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

  medrecon run ct_volumes.toml --backend ray       # the volumes of data.path = [...] as Ray tasks (local)
  medrecon run ct_volumes.toml --backend ray --address 10.0.0.1:6379 --gpus-per-task 1

A job whose data.path is a list of files or folders (glob patterns allowed) reconstructs each volume into
<out>/<volume name>/; every volume is validated before any is computed, each is written as soon as it is done,
and --resume skips the finished ones. --backend ray runs the work items (slice chunks, or whole volumes for
dds_3d) as Ray tasks: without --address on a local instance, with it on a running cluster (`ray start --head`
on the head node, `ray start --address HEAD:6379` on the others; inputs readable at the same paths on every
node). Needs `pip install 'medrecon[distributed]'`.

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
    ray = parser.add_argument_group("distributed (--backend ray)")
    ray.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where the work items run (default: this process)")
    ray.add_argument("--address", default=None, help="a running Ray cluster's head, host:port (default: start a "
                     "local instance)")
    ray.add_argument("--cpus-per-task", type=int, default=1, help="CPUs (torch threads) per work item")
    ray.add_argument("--gpus-per-task", type=float, default=0.0,
                     help='GPUs per work item (run.device = "cuda" implies 1)')
    ray.add_argument("--max-retries", type=int, default=3, help="retries of an item whose worker died")


def main(args: argparse.Namespace) -> int:
    from .acquisition import describe_acquisition
    from .backends import make_backend
    from .lock import OutputLock
    from .resume import describe_progress, finished_run
    from .run import check_output_dir, prepare_job, run_jobs
    from .spec import load_volume_jobs

    jobs = load_volume_jobs(args.job, args.overrides, out=args.out)
    backend = make_backend(args.backend, args.address, args.cpus_per_task, args.gpus_per_task, args.max_retries)
    if args.resume:
        done = [(spec, out) for spec, out in jobs if finished_run(out, spec.hash) is not None]
        for _, out in done:
            print(f"nothing to resume: {out} holds a finished run of this job (record.json)"
                  + ("" if len(jobs) > 1 else "; rerun without --resume to compute it again"))
        jobs = [job for job in jobs if job not in done]
        if not jobs:
            return 0
    for _, out in jobs:
        OutputLock(check_output_dir(out)).check()  # a folder in use fails before the data are read
    if hasattr(backend, "connect"):
        backend.connect([spec for spec, _ in jobs])  # an unreachable cluster fails before any compute
    try:
        prepared = None
        if len(jobs) == 1:
            prepared = [prepare_job(jobs[0][0], device=backend.prepare_device)]
            print(f"acquires  {describe_acquisition(prepared[0].problem.info)}")
        else:
            print(f"volumes   {len(jobs)}: " + ", ".join(out.name for _, out in jobs))
        results = run_jobs(
            jobs,
            resume=args.resume,
            progress=not args.quiet,
            prepared=prepared,
            on_resume=lambda info: print(describe_progress(info), flush=True),
            backend=backend,
            on_finished=(lambda r: print(f"finished  {r.out}", flush=True)) if len(jobs) > 1 else None,
        )
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    for result in results:
        spec = result.record["spec"]
        if result.metrics:
            if len(results) > 1:
                print(f"{result.out}:")
            print(format_metrics_table(result.metrics, result.record["timings"], spec["sampler"]["kind"]))
        warning = result.record.get("uncertainty", {}).get("warning")
        if warning:
            print(f"warning: {warning}", flush=True)
        total = result.record["timings"]["total_s"]
        print(f"wrote {len(result.files)} files to {result.out}/ in {total:.1f} s (record.json has the details)")
    return 0
