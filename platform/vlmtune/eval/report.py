"""Results on disk: `results.json` (stable keys), `results.md` (one table per benchmark), PNG bar charts."""

from __future__ import annotations

import io
import json

from vlmtune import storage
from vlmtune.eval.benchmarks import BENCHMARKS

SCHEMA_VERSION = 1
RESULTS_FILE, MARKDOWN_FILE, CHARTS_FOLDER = "results.json", "results.md", "charts"


def results_document(job: str, model: str, generation: dict, benchmarks: dict[str, dict]) -> dict:
    """The results.json document.

    Args:
        job: the EvalJob's name.
        model: what was evaluated (URI, or `preset:tiny`).
        generation: decoding settings, camelCase.
        benchmarks: name -> {"data", "predictions", "result"}.
    """
    headline = {}
    for name, entry in benchmarks.items():
        headline.update(BENCHMARKS[name].headline(entry["result"]))
    return {"schemaVersion": SCHEMA_VERSION, "job": job, "model": model, "generation": generation,
            "headline": headline, "benchmarks": benchmarks}


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def benchmark_markdown(name: str, result: dict) -> str:
    """One benchmark's section: title, table, and a note on predictions that did not match."""
    bench = BENCHMARKS[name]
    text = f"## {bench.title}\n\n{markdown_table(*bench.table(result))}\n"
    if result.get("missingPredictions"):
        text += f"\n{result['missingPredictions']} question(s) had no prediction and count as wrong.\n"
    return text


def results_markdown(document: dict) -> str:
    headline = markdown_table(["metric", "value"], [[key, value] for key, value in document["headline"].items()])
    sections = [benchmark_markdown(name, entry["result"]) for name, entry in document["benchmarks"].items()]
    return (f"# Evaluation of `{document['model']}` ({document['job']})\n\n{headline}\n\n" + "\n".join(sections))


def chart_png(title: str, bars: dict) -> bytes:
    """A bar chart: `{label: value}` as one series, or `{label: {series: value}}` as grouped bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(bars)
    grouped = bool(labels) and isinstance(bars[labels[0]], dict)
    series = list(bars[labels[0]]) if grouped else [None]
    figure = Figure(figsize=(max(4.0, 0.9 * len(labels) * max(1, len(series) * 0.6) + 1.5), 3.6), dpi=100)
    FigureCanvasAgg(figure)  # Agg needs no display; never touches pyplot's global state
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    for index, name in enumerate(series):
        values = [bars[label][name] if grouped else bars[label] for label in labels]
        positions = [x + (index - (len(series) - 1) / 2) * width for x in range(len(labels))]
        axes.bar(positions, values, width=width, label=name)
    values = [v for label in labels for v in (bars[label].values() if grouped else [bars[label]])]
    if values and max(values) <= 1:
        axes.set_ylim(0, 1.05)  # fractions: a fixed scale, so charts of two runs compare at a glance
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axes.set_title(title)
    if grouped:
        axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(output_uri: str, document: dict) -> dict[str, str]:
    """Write results.json, results.md and one chart per benchmark under `output_uri`; returns their URIs."""
    written = {"results": storage.join(output_uri, RESULTS_FILE), "markdown": storage.join(output_uri, MARKDOWN_FILE)}
    storage.write_bytes(written["results"], (json.dumps(document, indent=2) + "\n").encode())
    storage.write_bytes(written["markdown"], results_markdown(document).encode())
    for name, entry in document["benchmarks"].items():
        bench = BENCHMARKS[name]
        uri = storage.join(output_uri, CHARTS_FOLDER, f"{name}.png")
        storage.write_bytes(uri, chart_png(bench.title, bench.bars(entry["result"])))
        written[f"chart:{name}"] = uri
    return written
