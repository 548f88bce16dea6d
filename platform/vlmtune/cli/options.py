"""Command-line options that several commands share, defined once."""

from __future__ import annotations


def add_overrides(parser, help_text: str) -> None:
    """`--set PATH=VALUE` (repeatable) into `args.overrides`: a field of every job document changed before use."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help=help_text)
