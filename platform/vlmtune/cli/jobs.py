"""`vlmtune jobs list|status|logs|stop`: look after jobs on a remote Ray cluster."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="list, inspect, follow and stop jobs on a remote Ray cluster")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text, takes_id in (
        ("list", "jobs on the cluster, newest last", False),
        ("status", "state, message and metadata of a job", True),
        ("logs", "a job's logs", True),
        ("stop", "stop a job and wait until it has ended", True),
    ):
        sub = actions.add_parser(action, help=help_text)
        if takes_id:
            sub.add_argument("job_id", metavar="ID", help="submission id, as `vlmtune submit` printed it")
        if action == "logs":
            sub.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
        add_connection_arguments(sub)
        sub.set_defaults(handler=run)


def add_connection_arguments(parser) -> None:
    parser.add_argument(
        "--address",
        metavar="URL",
        help="Ray dashboard, e.g. http://127.0.0.1:8265 (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS)",
    )
    parser.add_argument(
        "--token",
        help="Ray auth token (default: $RAY_AUTH_TOKEN, or the file $RAY_AUTH_TOKEN_PATH "
        "names); prefer the environment: flags show up in `ps`",
    )
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verify the dashboard's TLS certificate (default: on)",
    )
    parser.add_argument("--ca-bundle", metavar="FILE", help="CA certificates to verify the dashboard against")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on a request the cluster has not answered in this time (default: %(default)s)",
    )


def connect(args):
    """The Connection the arguments describe; Ray's INFO chatter (uploads, websockets) kept off the console."""
    import ray.job_submission  # noqa: F401 - its modules set their loggers to INFO on import; quiet them after

    from vlmtune.runners.cluster import Connection

    for logger in (
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
    ):
        logging.getLogger(logger).setLevel(logging.WARNING)
    return Connection.resolve(args.address, args.token, args.ca_bundle or args.verify, timeout_s=args.timeout)


def run(args) -> int:
    from vlmtune.runners.cluster import Cluster, RemoteError

    try:
        cluster = Cluster(connect(args))
        if args.action == "list":
            print(job_table(cluster.jobs()))
        elif args.action == "status":
            print(describe(cluster.info(args.job_id)))
        elif args.action == "logs" and args.follow:
            return exit_code(cluster.follow(args.job_id, sys.stdout))
        elif args.action == "logs":
            print(cluster.logs(args.job_id), end="")
        else:
            info = cluster.stop(args.job_id)
            print(f"{args.job_id}: {info.status.value}")
    except RemoteError as err:
        print(f"vlmtune jobs {args.action}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.action == "logs":
            print(
                f"\nstopped following; the job keeps running (stop it: vlmtune jobs stop {args.job_id})",
                file=sys.stderr,
            )
        return 130
    return 0


def exit_code(info) -> int:
    """0 for a job that succeeded; 1, with Ray's reason, for one that failed or was stopped."""
    status = info.status.value
    print(f"{info.submission_id}: {status}", file=sys.stderr)
    if status == "SUCCEEDED":
        return 0
    if info.message:
        print(f"  {info.message.strip().splitlines()[0]}", file=sys.stderr)
    return 1


def job_table(jobs) -> str:
    rows = [("SUBMISSION ID", "STATUS", "JOB", "USER", "STARTED")]
    for job in sorted(jobs, key=lambda job: job.start_time or 0):
        meta = job.metadata or {}
        rows.append(
            (
                job.submission_id or job.job_id or "-",
                job.status.value,
                meta.get("job", "-"),
                meta.get("user", "-"),
                _time(job.start_time),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def describe(info) -> str:
    meta = info.metadata or {}
    lines = [f"{info.submission_id}: {info.status.value}"]
    if "job" in meta:
        lines.append(
            f"  job        {meta['job']} ({meta.get('kind', '?')}) from {meta.get('file', '?')}, "
            f"by {meta.get('user', '?')}"
        )
    lines.append(f"  started    {_time(info.start_time)}")
    lines.append(f"  ended      {_time(info.end_time)}")
    if info.message:
        lines.append(f"  message    {info.message.strip()}")
    return "\n".join(lines)


def _time(epoch_ms: int | None) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if epoch_ms else "-"
