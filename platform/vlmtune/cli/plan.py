"""`vlmtune plan FILE [--gpu TYPE] [--samples N] [--json]`: memory, time and fit before launch.

Exit status: 0 when every job fits, 1 when one does not, 2 when a job cannot be planned.
"""

from __future__ import annotations

import json
import sys

from vlmtune.cli.options import add_overrides
from vlmtune.plan import DEFAULT_MFU, GPUS, PlanError, gpu_for, plan_job, render
from vlmtune.runners.pipeline import expand_jobs
from vlmtune.spec import SpecError, TuningJob, load_jobs


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="per-GPU memory, steps, FLOPs, GPU-hours and a fit verdict before launch")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument(
        "--gpu", metavar="TYPE", help=f"GPU type ({', '.join(GPUS)}); default: the job's nodePool when it names one"
    )
    parser.add_argument("--samples", type=int, metavar="N", help="training samples per epoch (default: from the spec)")
    parser.add_argument("--shape", metavar="NAME", help="size the model as this shape (llava-7b, llava-13b, tiny)")
    parser.add_argument(
        "--mean-tokens",
        type=int,
        metavar="N",
        help="mean tokens per sample for time estimates (default: maxLength, an upper bound)",
    )
    parser.add_argument(
        "--mfu",
        type=float,
        default=DEFAULT_MFU,
        help="model-FLOPs utilisation assumed for GPU-hours (default: %(default)s)",
    )
    add_overrides(parser, "override a field before planning (repeatable), e.g. spec.training.microBatchSize=4")
    parser.add_argument("--json", action="store_true", help="print JSON (one object per job; a list for several)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    try:
        # An experiment is planned as the TuningJobs it expands into.
        jobs = [job for job in expand_jobs(load_jobs(args.files, args.overrides)) if isinstance(job, TuningJob)]
    except SpecError as err:
        print(f"{len(err.issues)} problem(s) found:", file=sys.stderr)
        for issue in err.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    by_name = {job.name: job for job in jobs}
    try:
        plans = [
            plan_job(
                job,
                gpu_for(job, args.gpu),
                jobs=by_name,
                samples=args.samples,
                shape=args.shape,
                mean_tokens=args.mean_tokens,
                mfu=args.mfu,
            )
            for job in jobs
        ]
    except PlanError as err:
        print(f"cannot plan: {err}", file=sys.stderr)
        return 2
    if args.json:
        dicts = [plan.to_dict() for plan in plans]
        print(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=1))
    else:
        files = " ".join(args.files)
        print("\n\n".join(render(plan, files) for plan in plans) or "no TuningJob to plan")
    return 0 if all(plan.fits for plan in plans) else 1
