"""How sure a difference between arms is: a paired, stratified bootstrap over the benchmark's questions (pure).

Every arm answered the same questions, so one resample of questions is scored for every arm and the arms'
difference is taken on it (paired). Questions are drawn with replacement within their group (MME subtask, POPE
split, MMBench category, ...), so every group keeps its size, and whole units at a time: MME's two questions of an
image, MMBench's rotations of a question. The metric is the benchmark's own headline, recomputed by its own scorer
on each resample, so F1, MME's acc+ and CircularEval are treated exactly as scored.

What this does not cover: training noise. Each arm was trained once; another seed may move both arms more than
these intervals show. The report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vlmtune.eval.benchmarks import Benchmark
from vlmtune.eval.items import Item
from vlmtune.report.metrics import metric

RESAMPLES, MIN_RESAMPLES, CONFIDENCE, SEED = 1000, 200, 0.95, 0
WORK = 4_000_000
"""Question scorings one comparison may spend: two arms on a full MMBench (17k rotations) get the minimum of 200
resamples, a quickstart-sized benchmark 1000."""


def resamples_for(questions: int, arms: int) -> int:
    return max(MIN_RESAMPLES, min(RESAMPLES, WORK // max(1, questions * arms)))


@dataclass(frozen=True)
class Answers:
    """One arm's answers on one benchmark, as scored (`scored/<benchmark>.jsonl` of its EvalJob)."""

    items: list[Item]
    predictions: list[str | None]
    reviews: list[list[str]] | None = None


def _key(item: Item) -> tuple[str, str]:
    return item.question_id, item.question


def paired(arms: Mapping[str, Answers]) -> tuple[list[Item], dict[str, Answers]]:
    """The questions every arm answered, in the first arm's order, and each arm's answers to exactly those."""
    names = list(arms)
    common = set.intersection(*(set(map(_key, arms[name].items)) for name in names))
    order = [item for item in arms[names[0]].items if _key(item) in common]
    aligned = {}
    for name, answers in arms.items():
        position = {_key(item): index for index, item in enumerate(answers.items)}
        picks = [position[_key(item)] for item in order]
        aligned[name] = Answers(
            [answers.items[i] for i in picks],
            [answers.predictions[i] for i in picks],
            None if answers.reviews is None else [answers.reviews[i] for i in picks],
        )
    return order, aligned


def strata(bench: Benchmark, items: Sequence[Item]) -> list[list[list[int]]]:
    """Groups of units of item indices: what one resample draws from (units within each group)."""
    groups: dict[str, dict[str, list[int]]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.group, {}).setdefault(bench.unit(item), []).append(index)
    return [list(units.values()) for units in groups.values()]


def resample(units: list[list[list[int]]], rng: np.random.Generator) -> list[int]:
    picked: list[int] = []
    for group in units:
        for choice in rng.integers(0, len(group), size=len(group)):
            picked.extend(group[choice])
    return picked


def _headline(bench: Benchmark, answers: Answers, picks: Sequence[int] | None = None) -> dict[str, float]:
    if picks is None:
        return bench.headline(bench.score(answers.items, answers.predictions, answers.reviews))
    reviews = None if answers.reviews is None else [answers.reviews[i] for i in picks]
    return bench.headline(
        bench.score([answers.items[i] for i in picks], [answers.predictions[i] for i in picks], reviews)
    )


def _score(name: str, value: float) -> float:
    """The value turned so that higher is better."""
    goal = metric(name)
    if goal.goal == "min":
        return -value
    if goal.goal == "target":
        return -abs(value - goal.target)
    return value


def _interval(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


def compare(bench: Benchmark, arms: Mapping[str, Answers], resamples: int | None = None, seed: int = SEED) -> dict:
    """Each headline metric of `bench`: every arm's value with its interval, and every pair's difference.

    Args:
        resamples: bootstrap resamples; default `resamples_for` the benchmark's size.

    Returns:
        {metric: {"arms": {arm: {value, low, high}}, "pairs": [{a, b, difference, low, high, winner}],
        "questions": n, "resamples": r}}, where `difference` is a - b in the metric's units, its interval is the
        bootstrap's, and `winner` is the arm the interval favours by the metric's goal (None: not significant).
    """
    items, aligned = paired(arms)
    if not items:
        return {}
    resamples = resamples or resamples_for(len(items), len(aligned))
    full = {name: _headline(bench, answers) for name, answers in aligned.items()}
    units, rng = strata(bench, items), np.random.default_rng(seed)
    names = sorted({m for values in full.values() for m in values})
    draws = {name: {m: np.full(resamples, np.nan) for m in names} for name in aligned}
    for round_ in range(resamples):
        picks = resample(units, rng)
        for name, answers in aligned.items():
            for m, value in _headline(bench, answers, picks).items():
                draws[name][m][round_] = value
    return {m: _metric_summary(m, full, draws, len(items)) | {"resamples": resamples} for m in names}


def _metric_summary(name: str, full: dict, draws: dict, questions: int) -> dict:
    arms = {}
    for arm in full:
        if name in full[arm]:
            low, high = _interval(draws[arm][name])
            arms[arm] = {"value": full[arm][name], "low": low, "high": high}
    pairs = []
    present = list(arms)
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            raw = draws[a][name] - draws[b][name]
            better = np.array([_score(name, x) - _score(name, y) for x, y in zip(draws[a][name], draws[b][name])])
            low, high = _interval(raw)
            better_low, better_high = _interval(better)
            winner = a if better_low > 0 else b if better_high < 0 else None
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "difference": arms[a]["value"] - arms[b]["value"],
                    "low": low,
                    "high": high,
                    "winner": winner,
                }
            )
    return {"arms": arms, "pairs": pairs, "questions": questions}


def significant_best(comparison: Mapping) -> list[str]:
    """The arm better than every other arm with a value, each by a significant margin; else none."""
    arms = list(comparison["arms"])
    if len(arms) < 2:
        return []
    for arm in arms:
        others = [pair for pair in comparison["pairs"] if arm in (pair["a"], pair["b"])]
        if others and all(pair["winner"] == arm for pair in others):
            return [arm]
    return []
