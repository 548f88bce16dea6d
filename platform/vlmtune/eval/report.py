"""Results on disk: `results.json` (stable keys), `results.md` (one table per benchmark), PNG bar charts."""

from __future__ import annotations

import io
import json

from vlmtune import storage
from vlmtune.eval.benchmarks import BENCHMARKS
from vlmtune.spec.layout import RunLayout

SCHEMA_VERSION = 1
EMPTY_RATE = "answers.emptyRate"
BAR_UNITS = {
    "mme": ("score per subtask (max 200)", 200.0),
    "pope": ("fraction (0-1)", 1.0),
    "mc": ("accuracy (0-1)", 1.0),
    "heldout": ("accuracy (0-1)", 1.0),
    "forgetting": ("accuracy (0-1)", 1.0),
    "llavabench": ("relative score (model / GPT-4 reference)", None),
    "mmvet": ("mean grade (0-1)", 1.0),
    "mmmu": ("accuracy (0-1)", 1.0),
}
"""Each benchmark chart's y axis: its name with unit, and its fixed top (None: fit the bars)."""


def results_document(
    job: str, model: str, generation: dict, benchmarks: dict[str, dict], judge: dict | None = None
) -> dict:
    """The results.json document.

    Args:
        job: the EvalJob's name.
        model: what was evaluated (URI, or `preset:tiny`).
        generation: decoding settings, camelCase.
        benchmarks: name -> {"data", "predictions", "result", "chance"?, "reviews"?}.
        judge: who judged, and how many replies were asked for and how many came from the cache.
    """
    headline, chance = {}, {}
    for name, entry in benchmarks.items():
        headline.update(BENCHMARKS[name].headline(entry["result"]))
        chance.update(entry.get("chance") or {})
    answers = _answers(benchmarks)
    if answers["questions"]:
        headline[EMPTY_RATE] = answers["emptyRate"]
    document = {
        "schemaVersion": SCHEMA_VERSION,
        "job": job,
        "model": model,
        "generation": generation,
        "headline": headline,
        "answers": answers,
        "chance": chance,
        "benchmarks": benchmarks,
    }
    if judge is not None:
        document["judge"] = judge
    return document


def _answers(benchmarks: dict[str, dict]) -> dict:
    """Questions, empty answers and missing predictions over every benchmark."""
    questions = sum(_questions(entry["result"]) for entry in benchmarks.values())
    empty = sum(entry["result"].get("emptyPredictions", 0) for entry in benchmarks.values())
    missing = sum(entry["result"].get("missingPredictions", 0) for entry in benchmarks.values())
    return {
        "questions": questions,
        "empty": empty,
        "missing": missing,
        "emptyRate": empty / questions if questions else 0.0,
    }


def _questions(result: dict) -> int:
    # `items`: every question put to the model (MMBench's rotations each count), as scoring counted them.
    return int(result.get("items", result.get("askedQuestions", result.get("questions", 0))))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def benchmark_markdown(name: str, result: dict) -> str:
    """One benchmark's section: title, table, and notes on missing and empty answers and judge replies."""
    bench = BENCHMARKS[name]
    text = f"## {bench.title}\n\n{markdown_table(*bench.table(result))}\n"
    notes = []
    if result.get("missingPredictions"):
        notes.append(f"{result['missingPredictions']} question(s) had no prediction and count as wrong.")
    if result.get("unusedPredictions"):
        notes.append(f"{result['unusedPredictions']} prediction(s) matched no question (wrong id or question text).")
    if result.get("emptyPredictions"):
        notes.append(f"{result['emptyPredictions']} answer(s) were empty.")
    if result.get("unparsable"):
        notes.append(
            f"{result['unparsable']} judge repl(ies) did not parse and are left out of the means "
            "(`relativeUpstream` in results.json averages them in as -1, as LLaVA's script does)."
        )
    if result.get("ungraded"):
        notes.append(f"{result['ungraded']} answer(s) got no parsable grade in 5 tries and score 0.0.")
    if result.get("guessed"):
        notes.append(
            f"{result['guessed']} multiple-choice answer(s) named no option; MMMU's rule picks one at random "
            "(seeded per question)."
        )
    return text + "".join(f"\n{note}\n" for note in notes)


def results_markdown(document: dict) -> str:
    headline = markdown_table(["metric", "value"], [[key, value] for key, value in document["headline"].items()])
    sections = [benchmark_markdown(name, entry["result"]) for name, entry in document["benchmarks"].items()]
    judge = document.get("judge")
    judged = (
        f"Judge: `{judge['judge']}`; {judge['replies']} replies: {judge['requestsSent']} requests sent, "
        f"{judge['fromCache']} answered from the cache (`judge/`).\n\n"
        if judge
        else ""
    )
    return f"# Evaluation of `{document['model']}` ({document['job']})\n\n{headline}\n\n{judged}" + "\n".join(sections)


def chart_png(
    title: str, bars: dict, ylabel: str = "", reference: tuple[float, str] | None = None, top: float | None = None
) -> bytes:
    """A bar chart: `{label: value}` as one series, or `{label: {series: value}}` as grouped bars.

    Every bar carries its value, so a zero bar still shows its 0.

    Args:
        ylabel: the y axis' name and unit.
        reference: (value, label) of a horizontal reference line (chance, the unbiased 0.5).
        top: the scale's maximum (a fixed scale compares across runs at a glance); None: fit the bars.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(bars)
    grouped = bool(labels) and isinstance(bars[labels[0]], dict)
    series = list(bars[labels[0]]) if grouped else [None]
    figure = Figure(figsize=(max(4.5, 0.9 * len(labels) * max(1, len(series) * 0.6) + 1.5), 3.8), dpi=100)
    FigureCanvasAgg(figure)  # Agg needs no display; never touches pyplot's global state
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    values = [v for label in labels for v in (bars[label].values() if grouped else [bars[label]])]
    fractions = top == 1.0 or (top is None and bool(values) and max(values) <= 1 and min(values) >= 0)
    for index, name in enumerate(series):
        heights = [bars[label][name] if grouped else bars[label] for label in labels]
        positions = [x + (index - (len(series) - 1) / 2) * width for x in range(len(labels))]
        drawn = axes.bar(positions, heights, width=width, label=name, edgecolor="black", linewidth=0.6)
        axes.bar_label(drawn, labels=[_value(h, fractions) for h in heights], fontsize=7, padding=2)
    if top is not None or fractions:
        axes.set_ylim(0, (top or 1.0) * 1.12)  # a fixed scale with room for the labels
    if reference is not None:
        axes.axhline(reference[0], color="grey", linestyle="--", linewidth=1, label=reference[1])
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(ylabel or ("fraction (0-1)" if fractions else "value"))
    axes.set_title(title)
    if grouped or reference is not None:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never on them
    if not labels:
        axes.text(0.5, 0.5, "nothing to show (see results.md)", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _value(value: float, fraction: bool) -> str:
    return f"{value:.2f}" if fraction else f"{value:.1f}"


def write_report(output_uri: str, document: dict) -> dict[str, str]:
    """Write results.json, results.md and one chart per benchmark under `output_uri`; returns their URIs."""
    layout = RunLayout(output_uri)
    written = {"results": layout.results, "markdown": layout.results_table}
    storage.write_bytes(written["results"], (json.dumps(document, indent=2) + "\n").encode())
    storage.write_bytes(written["markdown"], results_markdown(document).encode())
    for name, entry in document["benchmarks"].items():
        bench = BENCHMARKS[name]
        uri = layout.chart(name)
        reference = (0.5, "unbiased yes-ratio /\ncoin flip (0.5)") if name == "pope" else None
        ylabel, top = BAR_UNITS.get(name, ("", None))
        storage.write_bytes(
            uri, chart_png(f"{bench.title}: {document['job']}", bench.bars(entry["result"]), ylabel, reference, top)
        )
        written[f"chart:{name}"] = uri
    return written
