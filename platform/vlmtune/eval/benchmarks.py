"""The benchmark registry: one reader, scorer, headline and report shape per benchmark name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vlmtune import storage
from vlmtune.eval import choice, forgetting, heldout, mme, pope
from vlmtune.eval.items import Item, align, loads_jsonl


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    load: Callable[..., list[Item]]
    """(data URI, limit) -> items, reading the published layout."""
    score: Callable[[Sequence[Item], Sequence[str | None]], dict]
    """Items and their aligned predictions -> result (pure)."""
    headline: Callable[[dict], dict[str, float]]
    """The figures worth a job's status."""
    table: Callable[[dict], tuple[list[str], list[list]]]
    bars: Callable[[dict], dict]
    """Chart data: label -> value, or label -> {series: value}."""
    match_text: bool = False
    """Predictions match on question id and question text together, for every question (POPE)."""


def _benchmark(name: str, title: str, module, **options) -> Benchmark:
    return Benchmark(name, title, module.load, module.score_items, module.headline, module.table, module.bars,
                     **options)


BENCHMARKS: dict[str, Benchmark] = {
    "mme": _benchmark("mme", "MME", mme),
    "pope": _benchmark("pope", "POPE", pope, match_text=True),
    "mc": _benchmark("mc", "Multiple choice (MMBench layout, CircularEval)", choice),
    "heldout": _benchmark("heldout", "Held-out Vision-Flan tasks", heldout),
    "forgetting": _benchmark("forgetting", "Forgetting suite", forgetting),
}


def score_predictions(name: str, items: Sequence[Item], records: Sequence[dict], source: str = "predictions") -> dict:
    """Score prediction records against `items`.

    The result says how many questions had no prediction (scored as wrong), how many predictions matched no
    question, and how many answers were empty.

    Raises:
        PredictionsError: duplicate predictions for one question, or records of the wrong type (names `source`).
    """
    bench = BENCHMARKS[name]
    alignment = align(items, records, source, match_text=bench.match_text)
    result = bench.score(items, alignment.predictions)
    empty = sum(prediction is not None and not prediction.strip() for prediction in alignment.predictions)
    return {**result, "missingPredictions": alignment.missing, "unusedPredictions": alignment.unused,
            "emptyPredictions": empty}


def score_file(name: str, data: str, predictions: str, limit: int | None = None) -> dict:
    """`vlmtune eval score`: read the benchmark's data and a predictions JSON-lines file, score them."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    # Held-out annotations point at image files that scoring never looks at; other layouts hold images inline.
    items = heldout.load(data, limit, read_images=False) if name == "heldout" else BENCHMARKS[name].load(data, limit)
    return score_predictions(name, items, loads_jsonl(storage.read_bytes(predictions), predictions), predictions)
