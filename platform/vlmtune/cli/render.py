"""`vlmtune render FILE...`: print the Kubernetes objects the operator would create, as YAML."""

from __future__ import annotations

import sys

from vlmtune.cli.options import add_overrides
from vlmtune.spec import SpecError, load_jobs


def register(add_parser, name: str) -> None:
    parser = add_parser(
        name,
        help="print what the operator would create: a RayJob per job; for an Experiment its "
        "child jobs and the RayJobs of those that start at once",
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--runtime", metavar="FILE", help="operator runtime config (plain YAML or its ConfigMap)")
    parser.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="JOB=URI",
        help="model URI recorded by an upstream job (default: <its output.uri>/model)",
    )
    add_overrides(parser, "override a field before validation (repeatable)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from vlmtune_operator import BuildError, load_runtime, parse_artifacts, render_jobs, to_yaml

    try:
        artifacts = parse_artifacts(args.artifact)
        jobs = load_jobs(args.files, args.overrides, known=artifacts)
        objects = render_jobs(jobs, load_runtime(args.runtime), artifacts)
    except SpecError as err:
        print(f"{len(err.issues)} problem(s) found:\n  " + str(err).replace("\n", "\n  "), file=sys.stderr)
        return 1
    except (BuildError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(to_yaml(objects))
    return 0
