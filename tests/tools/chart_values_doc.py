"""Write (or check) the values table of a chart's README from the `# --` comments in its values.yaml.

The conventions are helm-docs': a comment block starting `# --` documents the key on the next line, following
`#` lines continue it, and `# @default -- text` replaces the rendered default. Keys inside list items are named
with their index (`nodePools[0].name`). Defaults come from the parsed YAML, types from the value (or the
`@default` text). The table sits between `<!-- values:start -->` and `<!-- values:end -->` in README.md.

    python tests/tools/chart_values_doc.py charts/vlmtune          # rewrite the table in charts/vlmtune/README.md
    python tests/tools/chart_values_doc.py --check charts/vlmtune  # exit 1 when README.md is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

START, END = "<!-- values:start -->", "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-/]+):(?:\s|$)")
_ITEM = re.compile(r"^(?P<indent>\s*)- ?(?P<rest>.*)$")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def rows(values_text: str) -> list[Row]:
    """One row per documented key, in file order."""
    values = yaml.safe_load(values_text) or {}
    documented = []
    stack: list[tuple[int, str]] = []  # (indent of a key, its path element, e.g. `nodePools[0]`)
    items: dict[str, int] = {}  # path of a list -> index of the item being read
    description: list[str] | None = None
    default_text: str | None = None
    for line in values_text.splitlines():
        item = _ITEM.match(line)
        if item:  # `- ...`: a new item of the list named by the innermost key left of the dash
            indent = len(item["indent"])
            _pop(stack, indent)
            if stack:
                owner_indent, element = stack[-1]
                base = re.sub(r"\[\d+\]$", "", element)
                path = ".".join([*(e for _, e in stack[:-1]), base])
                items[path] = items.get(path, -1) + 1
                stack[-1] = (owner_indent, f"{base}[{items[path]}]")
            line = " " * (indent + 2) + item["rest"]
        stripped = line.strip()
        if stripped.startswith("# @default --"):
            default_text = stripped.removeprefix("# @default --").strip()
        elif stripped.startswith("# --"):
            description, default_text = [stripped.removeprefix("# --").strip()], None
        elif stripped.startswith("#"):
            if description is not None:
                description.append(stripped.lstrip("#").strip())
        elif match := _KEY.match(line):
            _pop(stack, len(match["indent"]))
            stack.append((len(match["indent"]), match["key"]))
            if description is not None:
                path = ".".join(element for _, element in stack)
                documented.append(_row(path, " ".join(filter(None, description)), default_text, values))
                description, default_text = None, None
    return documented


def _pop(stack: list[tuple[int, str]], indent: int) -> None:
    while stack and stack[-1][0] >= indent:
        stack.pop()


def _row(path: str, description: str, default_text: str | None, values: dict) -> Row:
    value = _lookup(values, path)
    if default_text is not None:
        return Row(path, _type(value), default_text, description)
    return Row(path, _type(value), f"`{json.dumps(value, separators=(',', ':'))}`", description)


def _lookup(values, path: str):
    current = values
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        current = current[int(part[1:-1])] if part.startswith("[") else current[part]
    return current


def _type(value) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), "null"
    )


def table(documented: list[Row]) -> str:
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for row in documented:
        lines.append(
            f"| `{row.key}` | {row.type} | {row.default.replace('|', '&#124;')} | "
            f"{row.description.replace('|', '&#124;')} |"
        )
    return "\n".join(lines)


def rendered(chart: Path) -> str:
    """README.md with its values table regenerated."""
    readme = (chart / "README.md").read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{chart / 'README.md'}: no {START} ... {END} markers to put the values table between")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    body = table(rows((chart / "values.yaml").read_text()))
    return f"{before}{START}\n{body}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs from values.yaml")
    args = parser.parse_args(argv)
    expected = rendered(args.chart)
    if args.check:
        if (args.chart / "README.md").read_text() != expected:
            print(
                f"{args.chart}/README.md: the values table is stale; run python tests/tools/chart_values_doc.py "
                f"{args.chart}",
                file=sys.stderr,
            )
            return 1
        return 0
    (args.chart / "README.md").write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
