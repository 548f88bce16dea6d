"""The report as markdown (pure): the arm x metric table with the best value of each column in bold."""

from __future__ import annotations

from collections.abc import Mapping

from vlmtune.report.summary import GOALS

LABELS = {"samples": "samples", "loss.final": "final loss"}


def table_markdown(summary: Mapping) -> str:
    """One row per arm, one column per metric; the best value of each column is bold."""
    metrics = summary["metrics"]
    headers = ["arm", *(LABELS.get(metric, metric) for metric in metrics)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * len(metrics)) + "|"]
    for arm in summary["arms"]:
        cells = [arm["name"] + ("" if arm["complete"] else " (incomplete)")]
        for metric in metrics:
            value = arm["metrics"].get(metric)
            text = "–" if value is None else _number(value)
            cells.append(f"**{text}**" if arm["name"] in summary["best"].get(metric, []) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(summary: Mapping, plots: Mapping[str, str]) -> str:
    """report.md: the table, how "best" is meant, each arm's jobs, and the plots (paths relative to it)."""
    goals = "; ".join(f"{metric}: {'lowest' if goal == 'min' else f'closest to {target}'}"
                      for metric, (goal, target) in GOALS.items())
    parts = [f"# {summary['experiment']}: {summary['study']}", "", table_markdown(summary), "",
             f"Bold: the best arm per column ({goals}; any other metric: highest). "
             "samples: training samples per arm (steps x global batch, summed over its stages).", "", "## Jobs", "",
             "| arm | stage | job | state | finished |", "|---|---|---|---|---|"]
    for arm in summary["arms"]:
        for job in arm["jobs"]:
            parts.append(f"| {arm['name']} | {job['stage']} | {job['name']} | {job['phase']} | "
                         f"{job['finishedAt'] or '–'} |")
    if plots:
        parts += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n".join(parts) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int):  # counts (samples, steps)
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
