"""Spec errors that name the field path and the fix, and survive pickling across Ray workers.

Every issue prints as one line, whatever the input: values are shown as short previews and messages are
cut to a bounded length, so a 10 MB field or an expanded YAML alias never floods a terminal or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREVIEW_CHARS = 40
"""How much of a value an error message shows."""
MESSAGE_CHARS = 400
"""Longest message or fix an issue prints (longer ones are cut)."""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short, one-line stand-in for `value` in an error message: its repr, cut, or the shape of a collection."""
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` on one line and at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a job file."""

    source: str
    """File (and document number) the problem is in."""
    path: str
    """Dotted field path, e.g. `spec.training.globalBatchSize`."""
    message: str
    """What is wrong."""
    fix: str | None = None
    """What would make it right."""
    line: int | None = None
    """Line in the file (1-based) where the field is, when known."""

    def __str__(self) -> str:
        """One line: `FILE[:LINE][ (document N)]: PATH: MESSAGE; fix: FIX`."""
        where = self.source if self.line is None else _with_line(self.source, self.line)
        text = f"{where}: {self.path}: {one_line(self.message)}" if self.path else f"{where}: {one_line(self.message)}"
        return f"{text}; fix: {one_line(self.fix)}" if self.fix else text


def _with_line(source: str, line: int) -> str:
    file, sep, document = source.partition(" (document ")
    return f"{file}:{line}{sep}{document}"


class SpecError(ValueError):
    """A job file, or a set of them, is invalid; carries every issue found."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __reduce__(self):
        return (SpecError, (self.issues,))


class FieldIssues(ValueError):
    """Raised inside model validators to report problems at precise sub-paths.

    pydantic keeps the raised exception in the error's context, so the loader can turn
    `(relative path, message, fix)` triples back into full field paths.
    """

    def __init__(self, problems: list[tuple[tuple[str, ...], str, str | None]]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg, _ in problems))

    def __reduce__(self):
        return (FieldIssues, (self.problems,))
