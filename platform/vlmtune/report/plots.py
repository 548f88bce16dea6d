"""The report's PNG plots (matplotlib's Agg canvas: no display, no pyplot global state)."""

from __future__ import annotations

import io
from collections.abc import Mapping

from vlmtune.eval.report import chart_png


def benchmark_bars(summary: Mapping) -> dict[str, bytes]:
    """One grouped bar chart per benchmark: its headline metrics, one bar per arm."""
    by_benchmark: dict[str, dict[str, dict[str, float]]] = {}
    for metric in summary["metrics"]:
        benchmark, _, figure = metric.partition(".")
        if not figure or benchmark == "loss":
            continue
        values = {arm["name"]: arm["metrics"][metric] for arm in summary["arms"] if metric in arm["metrics"]}
        if values:
            by_benchmark.setdefault(benchmark, {})[figure] = values
    return {name: chart_png(f"{name} by arm", _complete(bars)) for name, bars in by_benchmark.items()}


def _complete(bars: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Grouped bars need every series under every label; an arm without a value draws none (0)."""
    arms = list(dict.fromkeys(arm for values in bars.values() for arm in values))
    return {label: {arm: values.get(arm, 0.0) for arm in arms} for label, values in bars.items()}


def loss_curves(summary: Mapping, manifest: Mapping, histories: Mapping[str, list[dict]]) -> bytes | None:
    """Training loss of every arm against training samples seen, its stages one after the other."""
    curves = {arm["name"]: _arm_curve(arm, histories) for arm in manifest["arms"]}
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return None
    figure, axes = _figure()
    for name, points in curves.items():
        axes.plot([x for x, _ in points], [y for _, y in points], marker=".", label=name)
    axes.set_xlabel("training samples")
    axes.set_ylabel("loss")
    if all(y > 0 for points in curves.values() for _, y in points):
        axes.set_yscale("log")  # losses fall over an order of magnitude; the later differences matter
    axes.set_title(f"{summary['experiment']}: training loss")
    axes.legend(fontsize=8)
    return _png(figure)


def _arm_curve(arm: Mapping, histories: Mapping[str, list[dict]]) -> list[tuple[int, float]]:
    points, offset = [], 0
    for job in arm["jobs"]:
        if job["kind"] != "TuningJob":
            continue
        points += [(offset + row["step"] * job["globalBatchSize"], row["loss"]) for row in histories.get(job["name"], [])]
        offset += job["steps"] * job["globalBatchSize"]
    return points


def yes_ratio_by_synthetic_samples(summary: Mapping) -> bytes | None:
    """POPE's yes-ratio against the stage-2 (synthetic) data size; 0.5 is unbiased."""
    points = sorted((arm["params"]["syntheticSamples"], arm["metrics"]["pope.yesRatio"]) for arm in summary["arms"]
                    if "syntheticSamples" in arm["params"] and "pope.yesRatio" in arm["metrics"])
    if not points:
        return None
    figure, axes = _figure()
    axes.plot([x for x, _ in points], [y for _, y in points], marker="o")
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="unbiased (0.5)")
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("stage-2 (synthetic) samples")
    axes.set_ylabel("POPE yes-ratio")
    axes.set_title(f"{summary['experiment']}: POPE yes-ratio")
    axes.legend(fontsize=8)
    return _png(figure)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
