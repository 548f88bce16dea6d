"""Reading job YAML without surprises: bounded nesting and alias expansion, duplicate keys refused,
and field paths mapped back to lines.

A 1 KB file of nested aliases expands to billions of nodes once anything walks it (validation, an error
message echoing a value); the event stream is scanned first, counting every node as if aliases were
expanded, so such a file is refused in microseconds. Duplicate keys are errors, as kubectl makes them
(PyYAML keeps the last one silently).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml import events

from vlmtune.spec.errors import preview

MAX_DEPTH = 48
"""Deepest nesting accepted (job files need about 8 levels)."""
MAX_NODES = 200_000
"""Most nodes a file may hold, aliases counted as expanded (the largest shipped job has a few hundred)."""

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10 MB values parse in milliseconds


class YamlProblem(ValueError):
    """The text cannot become job documents; `line` is 1-based (None: the whole file)."""

    def __init__(self, message: str, fix: str, line: int | None = None):
        super().__init__(message)
        self.message, self.fix, self.line = message, fix, line

    def __reduce__(self):
        return (YamlProblem, (self.message, self.fix, self.line))


class _JobLoader(_Base):
    """The safe loader, refusing a key that a mapping already has."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` may be overridden by explicit keys, as YAML intends
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable keys are the constructor's own error
                if duplicate:
                    raise YamlProblem(
                        f"duplicate key {preview(key)}: the API server refuses it, and YAML readers "
                        "disagree on which value wins",
                        "keep one of them",
                        key_node.start_mark.line + 1,
                    )
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 and Kubernetes read `2e-5` as a number; PyYAML's YAML 1.1 rules read it as text (a float needs a dot).
_JobLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


@dataclass
class _Open:
    start: int  # expanded node count when the collection opened
    deepest: int  # deepest nesting found below it
    anchor: str | None


def load_documents(text: str) -> list[Any]:
    """The YAML documents in `text` (empty ones dropped).

    Raises:
        YamlProblem: malformed YAML, nesting deeper than MAX_DEPTH, more than MAX_NODES nodes once
            aliases are expanded, or a duplicate key; with the line where it is.
    """
    check_shape(text)
    try:
        return [doc for doc in yaml.load_all(text, Loader=_JobLoader) if doc is not None]
    except yaml.YAMLError as err:
        raise _as_problem(err) from None
    except RecursionError:  # check_shape bounds nesting; this is the last line of defence
        raise YamlProblem(f"nested too deeply to read (more than {MAX_DEPTH} levels)", "flatten the document") from None


def check_shape(text: str) -> None:
    """Refuse deep nesting and alias bombs from the event stream, before anything is built.

    Raises:
        YamlProblem: as `load_documents`.
    """
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, nesting depth below it)
    stack: list[_Open] = []
    expanded = 0
    try:
        for event in yaml.parse(text, Loader=_JobLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            size = None
            if isinstance(event, events.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep", "flatten the document", line)
                stack.append(_Open(expanded, 0, event.anchor))
                expanded += 1
            elif isinstance(event, events.CollectionEndEvent):
                opened = stack.pop()
                size = (expanded - opened.start, opened.deepest + 1)
                _remember(anchors, opened.anchor, size)
            elif isinstance(event, events.ScalarEvent):
                expanded += 1
                size = (1, 0)
                _remember(anchors, event.anchor, size)
            elif isinstance(event, events.AliasEvent):
                size = anchors.get(event.anchor, (1, 0))  # an unknown alias is the loader's error
                expanded += size[0]
            if size and stack:
                stack[-1].deepest = max(stack[-1].deepest, size[1])
                if len(stack) + size[1] > MAX_DEPTH:
                    raise YamlProblem(
                        f"nested more than {MAX_DEPTH} levels deep once aliases are expanded",
                        "flatten the document; use fewer nested aliases",
                        line,
                    )
            if expanded > MAX_NODES:
                raise YamlProblem(
                    f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)",
                    "write the values out, without aliases that nest other aliases",
                    line,
                )
    except yaml.YAMLError as err:
        raise _as_problem(err) from None


def _remember(anchors: dict, anchor: str | None, size: tuple[int, int]) -> None:
    if anchor is not None:
        anchors[anchor] = size


def line_of(text: str, document: int, path: str) -> int | None:
    """The 1-based line of field `path` (e.g. `spec.data.sources[0].uri`) in document `document` (0-based)
    of `text`, or of the deepest part of it that exists; None when the text cannot be composed."""
    try:
        nodes = [node for node in yaml.compose_all(text, Loader=_JobLoader) if node is not None]
    except (yaml.YAMLError, RecursionError):
        return None
    if document >= len(nodes):
        return None
    node, found = nodes[document], None
    for part in _parts(path):
        node = _child(node, part)
        if node is None:
            break
        found = node.start_mark.line + 1
    return found if found is not None else nodes[document].start_mark.line + 1


_PART = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def _parts(path: str) -> Iterator[str | int]:
    for index, key in _PART.findall(path):
        yield int(index) if index else key


def _child(node, part: str | int):
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if part < len(node.value) else None
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        return next((value for key, value in node.value if getattr(key, "value", None) == part), None)
    return None


def _as_problem(err: yaml.YAMLError) -> YamlProblem:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return YamlProblem(
        f"not valid YAML{where}: {problem}",
        "fix the YAML syntax (indentation, colons, quotes)",
        mark.line + 1 if mark else None,
    )
