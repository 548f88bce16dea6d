"""`vlmtune submit FILE --address URL`: run every job in FILE on a remote Ray cluster."""

from __future__ import annotations

import sys

from vlmtune.cli.jobs import add_connection_arguments, connect, exit_code
from vlmtune.cli.options import add_overrides
from vlmtune.spec import SpecError, load_jobs


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="run job files on a remote Ray cluster, shipping this checkout's code")
    parser.add_argument("file", metavar="FILE", help="job file (multi-document YAML)")
    add_overrides(parser, "override a field in every job, e.g. --set spec.training.maxSteps=10")
    parser.add_argument(
        "--wait", action="store_true", help="follow the logs until the job ends; exit 1 unless it SUCCEEDED"
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    try:
        jobs = load_jobs([args.file], args.overrides)
    except SpecError as err:
        print(err, file=sys.stderr)
        return 1
    from vlmtune.runners.cluster import RemoteError
    from vlmtune.runners.remote import submit

    job_id = None
    try:
        connection = connect(args)
        cluster, job_id = submit(jobs, connection, source=args.file)
        print(job_id, flush=True)
        if not args.wait:
            print(f"follow: vlmtune jobs logs {job_id} --follow --address {connection.address}", file=sys.stderr)
            return 0
        return exit_code(cluster.follow(job_id, sys.stdout))
    except RemoteError as err:
        print(f"vlmtune submit: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if job_id:
            print(f"\nstopped following; the job keeps running (stop it: vlmtune jobs stop {job_id})", file=sys.stderr)
        return 130
