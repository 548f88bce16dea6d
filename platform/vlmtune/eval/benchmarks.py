"""The benchmark registry: one reader, scorer, headline and report shape per benchmark name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vlmtune import storage
from vlmtune.eval import choice, forgetting, heldout, llavabench, mme, mmmu, mmvet, pope
from vlmtune.eval.items import Item, align, loads_jsonl


def _no_chance(items: Sequence[Item]) -> dict[str, float]:
    return {}


def _question(item: Item) -> str:
    return item.question_id


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    load: Callable[..., list[Item]]
    """(data URI, limit) -> items, reading the published layout."""
    scorer: Callable[..., dict]
    """Items and their aligned predictions (and, when judged, each question's judge replies) -> result (pure)."""
    headline: Callable[[dict], dict[str, float]]
    """The figures worth a job's status."""
    table: Callable[[dict], tuple[list[str], list[list]]]
    bars: Callable[[dict], dict]
    """Chart data: label -> value, or label -> {series: value}."""
    match_text: bool = False
    """Predictions match on question id and question text together, for every question (POPE)."""
    chance: Callable[[Sequence[Item]], dict[str, float]] = field(default=_no_chance)
    """Headline figures of random answers, where there is such a thing (chance lines in plots)."""
    next_request: Callable | None = None
    """Judged benchmarks: what to ask the judge next about a question (see `judge.review`)."""
    unit: Callable[[Item], str] = field(default=_question)
    """What a bootstrap resamples: questions scored together stay together (MME's image pairs, MMBench's
    rotations)."""

    @property
    def judged(self) -> bool:
        return self.next_request is not None

    def score(
        self, items: Sequence[Item], predictions: Sequence[str | None], reviews: Sequence[Sequence[str]] | None = None
    ) -> dict:
        """The result of `items` answered by `predictions` (judged benchmarks: and reviewed by `reviews`)."""
        if not self.judged:
            return self.scorer(items, predictions)
        if reviews is None:
            raise ValueError(f"{self.name} is scored from a judge's reviews; none were given")
        return self.scorer(items, predictions, reviews)


def _benchmark(name: str, title: str, module, **options) -> Benchmark:
    return Benchmark(
        name,
        title,
        module.load,
        module.score_items,
        module.headline,
        module.table,
        module.bars,
        chance=getattr(module, "chance", _no_chance),
        **options,
    )


BENCHMARKS: dict[str, Benchmark] = {
    "mme": _benchmark("mme", "MME", mme),
    "pope": _benchmark("pope", "POPE", pope, match_text=True),
    "mc": _benchmark("mc", "Multiple choice (MMBench layout, CircularEval)", choice, unit=lambda item: item.source_id),
    "heldout": _benchmark("heldout", "Held-out Vision-Flan tasks", heldout),
    "forgetting": _benchmark("forgetting", "Catastrophic forgetting (CF): classification sets", forgetting),
    "llavabench": _benchmark(
        "llavabench", "LLaVA-Bench (in the wild), judged", llavabench, next_request=llavabench.next_request
    ),
    "mmvet": _benchmark("mmvet", "MM-Vet, judged", mmvet, next_request=mmvet.next_request),
    "mmmu": _benchmark("mmmu", "MMMU (validation)", mmmu),
}


def _empty(predictions: Sequence[str | None]) -> int:
    """Answers that are empty (a model that says nothing is scored by each benchmark's own rule, so count it)."""
    return sum(prediction is not None and not prediction.strip() for prediction in predictions)


def score_predictions(
    name: str,
    items: Sequence[Item],
    records: Sequence[dict],
    source: str = "predictions",
    reviews: Sequence[Sequence[str]] | None = None,
) -> dict:
    """Score prediction records against `items`.

    The result says how many questions had no prediction (scored as wrong), how many predictions matched no
    question, and how many answers were empty.

    Raises:
        PredictionsError: duplicate predictions for one question, or records of the wrong type (names `source`).
    """
    bench = BENCHMARKS[name]
    alignment = align(items, records, source, match_text=bench.match_text)
    result = bench.score(items, alignment.predictions, reviews)
    return {
        **result,
        "items": len(items),
        "missingPredictions": alignment.missing,
        "unusedPredictions": alignment.unused,
        "emptyPredictions": _empty(alignment.predictions),
    }


def load_items(name: str, data: str, limit: int | None = None) -> list[Item]:
    """A benchmark's items for scoring saved predictions (held-out annotations: no images read)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return heldout.load(data, limit, read_images=False) if name == "heldout" else BENCHMARKS[name].load(data, limit)


def score_file(name: str, data: str, predictions: str, limit: int | None = None, reviews: str | None = None) -> dict:
    """`vlmtune eval score`: read the benchmark's data and a predictions file (and a judged benchmark's reviews),
    score them."""
    items = load_items(name, data, limit)
    records = loads_jsonl(storage.read_bytes(predictions), predictions)
    replies = None
    if BENCHMARKS[name].judged:
        from vlmtune.eval.reviews import read_reviews

        if reviews is None:
            raise ValueError(
                f"{name} is scored from a judge's reviews: give --reviews FILE (vlmtune's "
                "reviews/<benchmark>.jsonl, LLaVA's review JSONL or MM-Vet's grade JSON)"
            )
        replies = read_reviews(storage.read_bytes(reviews), reviews, items)
    return score_predictions(name, items, records, predictions, replies)
