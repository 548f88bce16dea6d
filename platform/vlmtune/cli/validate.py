"""`vlmtune validate FILE...`: check job files; every error names the field path and the fix."""

from __future__ import annotations

import sys

from vlmtune.cli.options import add_overrides
from vlmtune.spec import SpecError, load_jobs


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="check job files")
    parser.add_argument("files", nargs="+", metavar="FILE")
    add_overrides(parser, "override a field before validation (repeatable)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    try:
        jobs = load_jobs(args.files, args.overrides)
    except SpecError as err:
        print(f"{len(err.issues)} problem(s) found:", file=sys.stderr)
        for issue in err.issues:
            print(f"  {issue}".replace("\n", "\n  "), file=sys.stderr)
        return 1
    for job in jobs:
        print(f"ok  {job.kind}/{job.name}")
    return 0
