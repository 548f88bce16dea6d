"""Spec errors that name the field path and the fix, and survive pickling across Ray workers."""

from __future__ import annotations

from dataclasses import dataclass


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

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        text = f"{where}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


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
        super().__init__("; ".join(f"{'.'.join(loc)}: {msg}" for loc, msg, _ in problems))

    def __reduce__(self):
        return (FieldIssues, (self.problems,))
