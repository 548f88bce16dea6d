"""The `vlmtune` command: one module per subcommand, each with `register(subparsers)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib

# Subcommand modules keep heavy imports (torch, Ray) inside their handlers, so parsing stays fast.
SUBCOMMANDS = {
    "run": "vlmtune.cli.run",
    "validate": "vlmtune.cli.validate",
    "data": "vlmtune.cli.data",
    "render": "vlmtune.cli.render",
    "crds": "vlmtune.cli.crds",
    "submit": "vlmtune.cli.submit",
    "jobs": "vlmtune.cli.jobs",
    "eval": "vlmtune.cli.eval",
    "bench": "vlmtune.cli.bench",
    "plan": "vlmtune.cli.plan",
    "report": "vlmtune.cli.report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmtune", description="Two-stage visual instruction tuning on Ray + DeepSpeed.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(module).register(subparsers.add_parser, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)

