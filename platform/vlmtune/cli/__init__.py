"""The `vlmtune` command: one module per subcommand, each with `register(subparsers)` and `run(args)`."""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata

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


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one worth saying (not None, a flag's False or [])."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action = copy.copy(action)  # an option without help text still shows its default
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not _has_default(action):
            return text
        return f"{text} (default: %(default)s)"


def _has_default(action: argparse.Action) -> bool:
    default = action.default
    if not action.option_strings or default is None or default is argparse.SUPPRESS or isinstance(default, bool):
        return False
    return default != []


class Parser(argparse.ArgumentParser):
    """`vlmtune`'s parser: subcommand parsers are made of this class (argparse's default), so they share the
    formatter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def version() -> str:
    try:
        return importlib.metadata.version("vlmtune")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vlmtune", description="Two-stage visual instruction tuning on Ray + DeepSpeed.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(module).register(subparsers.add_parser, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)
