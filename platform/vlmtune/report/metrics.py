"""What each reported metric is called, in which unit it is shown, and which way is better (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    title: str
    """A human name, e.g. "MMBench (CircularEval)"."""
    unit: str
    """The axis label / column unit, e.g. "accuracy (%)"."""
    scale: float = 1.0
    """Shown value = stored value x scale (fractions are shown as percentages, as the paper does)."""
    goal: str = "max"
    """max, min, or target (closest to `target`)."""
    target: float | None = None


METRICS: dict[str, Metric] = {
    "samples": Metric("Training samples", "samples"),
    "loss.final": Metric("Final training loss", "loss (last logged step)", goal="min"),
    "mme.perception": Metric("MME perception", "score (max 2000)"),
    "mme.cognition": Metric("MME cognition", "score (max 800)"),
    "mc.circularAccuracy": Metric("MMBench (CircularEval)", "accuracy (%)", 100),
    "mc.singleAccuracy": Metric("MMBench, single pass", "accuracy (%)", 100),
    "llavabench.relative": Metric("LLaVA-Bench (in the wild)", "relative score (% of GPT-4's)", 100),
    "mmvet.total": Metric("MM-Vet", "score (0-100)", 100),
    "mmmu.accuracy": Metric("MMMU (validation)", "accuracy (%)", 100),
    "pope.f1": Metric("POPE F1 (mean of splits)", "F1 (%)", 100),
    "pope.accuracy": Metric("POPE accuracy", "accuracy (%)", 100),
    # POPE asks as many "no" as "yes" questions: a yes-ratio far from 50% either way is a bias.
    "pope.yesRatio": Metric("POPE yes-ratio", "yes answers (%)", 100, goal="target", target=0.5),
    "forgetting.meanAccuracy": Metric("CF (mean accuracy over the classification sets)", "accuracy (%)", 100),
    "heldout.accuracy": Metric("Held-out tasks", "accuracy (%)", 100),
    "heldout.meanTaskAccuracy": Metric("Held-out tasks, mean over tasks", "accuracy (%)", 100),
    "answers.emptyRate": Metric("Empty answers", "share of all answers (%)", 100, goal="min"),
}
PAPER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mme.perception", "MME"),
    ("mc.circularAccuracy", "MMBench"),
    ("llavabench.relative", "LLaVA-Bench"),
    ("mmvet.total", "MM-Vet"),
    ("mmmu.accuracy", "MMMU"),
    ("pope.f1", "POPE"),
    ("forgetting.meanAccuracy", "CF"),
)
"""The VISION-FLAN paper's evaluation columns, in its order, and the headline metric behind each."""


def metric(name: str) -> Metric:
    return METRICS.get(name, Metric(name, "value"))


def shown(name: str, value: float) -> float:
    return value * metric(name).scale


def number(name: str, value: float | None) -> str:
    """A value as the report prints it: percentages and scores to one decimal, counts whole."""
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    value = shown(name, value)
    return f"{value:.3f}" if metric(name).scale == 1 and abs(value) < 10 else f"{value:.1f}"


def beats_chance(name: str, interval, chance: float | None) -> bool:
    """Whether an arm's 95% `interval` on metric `name` lies above the chance level (True where none is known).

    Only metrics where higher is better have a chance level to beat; a missing interval counts as beating it.
    """
    if chance is None or not interval or metric(name).goal != "max":
        return True
    return interval[0] > chance
