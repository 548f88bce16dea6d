"""Pure mapping from a run's files to status figures: progress, latest training metrics, eval headline.

Inputs are what the store reader returns: the tail of metrics.jsonl (its first line may be cut in half, its
last one may be unfinished), job.json and results.json (None when absent). Nothing here raises on odd
content: a status that lacks a figure is better than a status timer that crashes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

ROW_METRICS = {
    "step": "step",
    "loss": "loss",
    "learning_rate": "learningRate",
    "tokens_per_s": "tokensPerSecond",
    "samples_per_s": "samplesPerSecond",
    "mfu": "mfu",
}
"""metrics.jsonl key -> status.metrics key, for the figures a status shows."""


@dataclass(frozen=True)
class RunFiles:
    """What the store holds for one run (None / empty: not written yet)."""

    metrics_tail: bytes | None = None
    record: Mapping | None = None
    results: Mapping | None = None


@dataclass(frozen=True)
class Figures:
    """Status fields from the run's files; None means "nothing to say", not "clear it"."""

    progress: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    results: dict[str, float] = field(default_factory=dict)

    def fields(self) -> dict:
        values = {"progress": self.progress, "metrics": self.metrics or None, "results": self.results or None}
        return {key: value for key, value in values.items() if value is not None}


def last_row(tail: bytes | None, from_start: bool) -> dict | None:
    """The last complete metrics row in the tail of metrics.jsonl.

    Args:
        from_start: the tail is the whole file (its first line is whole, not cut by the bounded read).
    """
    if not tail:
        return None
    lines = tail.decode("utf-8", errors="replace").splitlines()
    if not from_start:
        lines = lines[1:]
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the line being written, or one cut by the tail read
        if isinstance(row, dict) and _number(row.get("step")) is not None:
            return row
    return None


def progress_of(step: float, total: float | None) -> str:
    """`37/128 (29%)`, or `step 37` when the planned total is unknown."""
    if not total:
        return f"step {int(step)}"
    return f"{int(step)}/{int(total)} ({math.floor(100 * min(step, total) / total)}%)"


def figures(kind: str, files: RunFiles, planned_steps: int | None, whole_tail: bool) -> Figures:
    """Status figures of a TuningJob or EvalJob run.

    Args:
        planned_steps: `spec.training.maxSteps` when the job sets it; a row's `total_steps` wins (the trainer
            knows the plan even for an epoch-based job).
        whole_tail: `files.metrics_tail` holds the whole metrics.jsonl.
    """
    record = files.record or {}
    recorded = _numbers(record.get("metrics") or {}) if record.get("phase") == "Succeeded" else {}
    if kind == "EvalJob":
        headline = recorded or _numbers((files.results or {}).get("headline") or {})
        return Figures(results=headline)
    row = last_row(files.metrics_tail, whole_tail)
    metrics = {name: _number(row.get(key)) for key, name in ROW_METRICS.items()} if row else {}
    metrics = {name: value for name, value in metrics.items() if value is not None} | recorded
    progress = None
    if row is not None:
        total = _number(row.get("total_steps")) or planned_steps
        progress = progress_of(metrics["step"], total)
    return Figures(progress=progress, metrics=metrics)


def _numbers(values: Mapping) -> dict[str, float]:
    numbers = {str(key): _number(value) for key, value in values.items()}
    return {key: value for key, value in numbers.items() if value is not None}


def _number(value) -> float | int | None:
    """A finite int or float (bools, strings, NaN and infinities are not figures)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None
