"""The report's PNG plots, made to be read at a glance: human titles, axis labels with units, every bar's value
written on it (a zero bar too), the 95% interval as an error bar, and reference lines (chance, 50% yes) where one
exists. matplotlib's Agg canvas: no display, no pyplot global state."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from vlmtune.report.metrics import PAPER_COLUMNS, metric, shown

COLUMN_NAMES = dict(PAPER_COLUMNS)
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def metric_grid(summary: Mapping, names: list[str], title: str) -> bytes | None:
    """One small bar chart per metric (arms as bars), side by side."""
    names = [name for name in names if any(name in arm["metrics"] for arm in summary["arms"])]
    if not names:
        return None
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure, grid = _figure(3.1 * columns, 3.0 * rows + 0.5, rows, columns)
    axes_list = [grid] if rows * columns == 1 else list(grid.flat)
    for axes, name in zip(axes_list, names):
        _metric_bars(axes, summary, name)
    for axes in axes_list[len(names) :]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=11)
    return _png(figure)


def _metric_bars(axes, summary: Mapping, name: str) -> None:
    arms = [arm for arm in summary["arms"] if name in arm["metrics"]]
    values = [shown(name, arm["metrics"][name]) for arm in arms]
    intervals = [arm.get("intervals", {}).get(name) for arm in arms]
    positions = list(range(len(arms)))
    axes.bar(
        positions,
        values,
        color=[COLORS[i % len(COLORS)] for i in positions],
        edgecolor="black",
        linewidth=0.6,
        width=0.6,
    )
    tops = list(values)
    if intervals and all(interval is not None for interval in intervals):
        low = [max(0.0, v - shown(name, i[0])) for v, i in zip(values, intervals)]
        high = [max(0.0, shown(name, i[1]) - v) for v, i in zip(values, intervals)]
        axes.errorbar(positions, values, yerr=[low, high], fmt="none", ecolor="black", capsize=4, linewidth=1)
        tops = [v + h for v, h in zip(values, high)]
    top = max([*tops, 1e-9])
    # Room above the tallest bar for its label; percentages keep a 0-100 feel unless they run past it.
    limit = min(115, max(top * 1.3, 10)) if metric(name).scale == 100 and top <= 100 else top * 1.3
    axes.set_ylim(0, limit)
    for x, value, above in zip(positions, values, tops):  # above the error bar, so the two never overlap
        axes.text(x, above + limit * 0.02, _text(value), ha="center", va="bottom", fontsize=8, fontweight="bold")
    _reference_line(axes, summary, name)
    axes.set_xticks(positions, [arm["name"] for arm in arms], fontsize=8)
    axes.set_ylabel(metric(name).unit, fontsize=8)
    axes.set_title(COLUMN_NAMES.get(name, metric(name).title), fontsize=9)


def _reference_line(axes, summary: Mapping, name: str) -> None:
    """A target metric's target (POPE's unbiased 50% yes), else the chance level when there is one."""
    goal = metric(name)
    if goal.goal == "target":
        value = goal.target
        label = f"unbiased ({shown(name, value):.0f}%)" if goal.scale == 100 else f"unbiased ({value})"
    elif (summary.get("chance") or {}).get(name) is not None:
        value, label = summary["chance"][name], "chance"
    else:
        return
    axes.axhline(shown(name, value), color="grey", linestyle="--", linewidth=1, label=label)
    axes.legend(fontsize=7, loc="upper right")


def _text(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 or value == 0 else f"{value:.2f}"


def loss_curves(summary: Mapping, manifest: Mapping, histories: Mapping[str, list[dict]]) -> bytes | None:
    """Training loss of every arm against training samples seen, its stages one after the other; a dotted line
    where an arm's stage 2 starts."""
    curves = {arm["name"]: _arm_curve(arm, histories) for arm in manifest["arms"]}
    curves = {name: curve for name, curve in curves.items() if curve[0]}
    if not curves:
        return None
    figure, axes = _figure(6.4, 3.8)
    for index, (name, (points, starts)) in enumerate(curves.items()):
        color = COLORS[index % len(COLORS)]
        axes.plot([x for x, _ in points], [y for _, y in points], marker=".", label=name, color=color)
        for start in starts:
            axes.axvline(start, color=color, linestyle=":", linewidth=1.2)
            axes.annotate(
                f"{name}: stage 2 starts",
                (start, 0.97),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color=color,
            )
    axes.set_xlabel("training samples seen")
    axes.set_ylabel("training loss (log scale)")
    if all(y > 0 for points, _ in curves.values() for _, y in points):
        axes.set_yscale("log")  # losses fall over an order of magnitude; the later differences matter
    axes.set_title(f"{summary['experiment']}: training loss by arm")
    axes.legend(fontsize=8)
    return _png(figure)


def _arm_curve(arm: Mapping, histories: Mapping[str, list[dict]]) -> tuple[list[tuple[int, float]], list[int]]:
    """(points, sample counts where a later stage starts)."""
    points, starts, offset, stages = [], [], 0, 0
    for job in arm["jobs"]:
        if job["kind"] != "TuningJob":
            continue
        if stages:
            starts.append(offset)
        stages += 1
        points += [
            (offset + row["step"] * job["globalBatchSize"], row["loss"]) for row in histories.get(job["name"], [])
        ]
        offset += job["steps"] * job["globalBatchSize"]
    return points, starts


def yes_ratio(summary: Mapping) -> bytes | None:
    """POPE's yes-ratio per arm against the unbiased 50% line; for synthetic-data scaling, against the stage-2 data
    size instead."""
    arms = [arm for arm in summary["arms"] if "pope.yesRatio" in arm["metrics"]]
    if not arms:
        return None
    if any("syntheticSamples" in arm["params"] for arm in arms):
        return _yes_ratio_by_synthetic(summary, arms)
    figure, axes = _figure(max(4.0, 1.2 * len(arms) + 2), 3.6)
    _metric_bars(axes, summary, "pope.yesRatio")
    axes.set_title(f"{summary['experiment']}: POPE yes-ratio (50% = unbiased)")
    return _png(figure)


def _yes_ratio_by_synthetic(summary: Mapping, arms: list[Mapping]) -> bytes:
    points = sorted(
        (
            arm["params"]["syntheticSamples"],
            shown("pope.yesRatio", arm["metrics"]["pope.yesRatio"]),
            arm.get("intervals", {}).get("pope.yesRatio"),
        )
        for arm in arms
    )
    figure, axes = _figure(6.0, 3.6)
    axes.plot([x for x, _, _ in points], [y for _, y, _ in points], marker="o", label="POPE yes-ratio")
    if all(interval for _, _, interval in points):
        axes.fill_between(
            [x for x, _, _ in points],
            [shown("pope.yesRatio", i[0]) for _, _, i in points],
            [shown("pope.yesRatio", i[1]) for _, _, i in points],
            alpha=0.2,
            label="95% interval",
        )
    for x, y, _ in points:
        axes.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    axes.axhline(50, color="grey", linestyle="--", linewidth=1, label="unbiased (50%)")
    axes.set_ylim(0, 105)
    axes.set_xlabel("stage-2 (synthetic) training samples")
    axes.set_ylabel("yes answers (%)")
    axes.set_title(f"{summary['experiment']}: POPE yes-ratio against stage-2 data")
    axes.legend(fontsize=8)
    return _png(figure)


def _figure(width: float, height: float, rows: int = 1, columns: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=True)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
