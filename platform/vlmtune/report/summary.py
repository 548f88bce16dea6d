"""The JSON summary of an experiment (pure): per arm its budget, state and metrics with their intervals, the
differences between arms with theirs, and a "best" arm only where it is better beyond the noise."""

from __future__ import annotations

from collections.abc import Mapping

from vlmtune.report.metrics import METRICS, PAPER_COLUMNS, beats_chance
from vlmtune.report.uncertainty import Answers, compare, significant_best

SCHEMA_VERSION = 2
GOALS: dict[str, tuple[str, float | None]] = {
    name: (m.goal, m.target) for name, m in METRICS.items() if m.goal != "max"
}
"""How a metric's best value is chosen; any other metric: the highest."""
TRAINING_METRICS = ("samples", "loss.final")
EMPTY_RATE = "answers.emptyRate"


def summarize(
    manifest: Mapping,
    records: Mapping[str, Mapping | None],
    generated_at: str | None = None,
    evaluations: Mapping[str, Mapping] | None = None,
    answers: Mapping[str, Mapping[str, Answers]] | None = None,
    resamples: int | None = None,
) -> dict:
    """The summary.json document of an experiment.

    Args:
        manifest: experiment.json.
        records: job name -> job.json (None when the job has not started).
        generated_at: a timestamp to record.
        evaluations: EvalJob name -> results.json (chance levels, answer counts, judge notes).
        answers: EvalJob name -> benchmark -> the answers scored (what the bootstrap resamples); without them no
            interval is given and no arm is called best.
        resamples: bootstrap resamples (default `uncertainty.RESAMPLES`).
    """
    arms = [_arm(arm, records) for arm in manifest["arms"]]
    comparisons = _comparisons(manifest, arms, answers or {}, resamples)
    for arm in arms:
        arm["intervals"] = {
            m: [c["arms"][arm["name"]]["low"], c["arms"][arm["name"]]["high"]]
            for m, c in comparisons.items()
            if arm["name"] in c["arms"]
        }
    evaluated = [key for arm in arms for key in arm["metrics"] if key not in TRAINING_METRICS]
    present = dict.fromkeys(evaluated)
    paper = [name for name, _ in PAPER_COLUMNS if name in present]
    metrics = [
        *TRAINING_METRICS,
        *paper,
        *([EMPTY_RATE] if EMPTY_RATE in present else []),
        *(name for name in present if name not in paper and name != EMPTY_RATE),
    ]
    chance = _chance(manifest, evaluations or {})
    return {
        "schemaVersion": SCHEMA_VERSION,
        "experiment": manifest["experiment"],
        "study": manifest["study"],
        "generatedAt": generated_at,
        "metrics": metrics,
        "paperColumns": [{"metric": name, "column": column} for name, column in PAPER_COLUMNS if name in present],
        "arms": arms,
        "comparisons": {
            m: {"pairs": c["pairs"], "questions": c["questions"], "resamples": c["resamples"]}
            for m, c in comparisons.items()
        },
        "best": {m: _best(m, c, arms, chance) for m, c in comparisons.items()},
        "chance": chance,
        "notes": _notes(manifest, evaluations or {}),
    }


def _arm(arm: Mapping, records: Mapping[str, Mapping | None]) -> dict:
    jobs = [_job(job, records.get(job["name"])) for job in arm["jobs"]]
    metrics: dict[str, float] = {"samples": arm["budgetSamples"]}
    trained = [job for job in jobs if job["kind"] == "TuningJob" and job["phase"] == "Succeeded"]
    if trained and len(trained) == sum(job["kind"] == "TuningJob" for job in jobs):
        last = trained[-1]["metrics"]
        if "loss.final" in last:
            metrics["loss.final"] = last["loss.final"]
    evaluation = jobs[-1]
    if evaluation["phase"] == "Succeeded":
        metrics.update(evaluation["metrics"])
    return {
        "name": arm["name"],
        "params": dict(arm.get("params") or {}),
        "budgetSamples": arm["budgetSamples"],
        "complete": all(job["phase"] == "Succeeded" for job in jobs),
        "metrics": metrics,
        "jobs": jobs,
    }


def _job(job: Mapping, record: Mapping | None) -> dict:
    record = record or {}
    return {
        "name": job["name"],
        "kind": job["kind"],
        "stage": job["stage"],
        "path": job["path"],
        "phase": record.get("phase", "NotStarted"),
        "specHash": record.get("specHash"),
        "finishedAt": record.get("finishedAt"),
        "metrics": dict(record.get("metrics") or {}),
    }


def _comparisons(manifest: Mapping, arms: list[dict], answers: Mapping, resamples: int | None) -> dict:
    """Bootstrap comparisons of every headline metric, benchmark by benchmark, over the arms that finished it."""
    from vlmtune.eval.benchmarks import BENCHMARKS

    by_arm = {arm["name"]: answers.get(arm["jobs"][-1]["name"], {}) for arm in manifest["arms"]}
    complete = {arm["name"] for arm in arms if arm["jobs"][-1]["phase"] == "Succeeded"}
    benchmarks = dict.fromkeys(b for name, found in by_arm.items() if name in complete for b in found)
    result = {}
    for benchmark in benchmarks:
        if benchmark not in BENCHMARKS:
            continue
        arms_answers = {
            name: found[benchmark] for name, found in by_arm.items() if name in complete and benchmark in found
        }
        options = {} if resamples is None else {"resamples": resamples}
        result.update(compare(BENCHMARKS[benchmark], arms_answers, **options))
    return result


def _best(name: str, comparison: Mapping, arms: list[dict], chance: Mapping[str, float]) -> list[str]:
    """The significantly best arm, unless it does not beat random answers (then it is best at failing: no bold)."""
    intervals = {arm["name"]: arm.get("intervals", {}).get(name) for arm in arms}
    return [arm for arm in significant_best(comparison) if beats_chance(name, intervals.get(arm), chance.get(name))]


def _chance(manifest: Mapping, evaluations: Mapping[str, Mapping]) -> dict[str, float]:
    chance: dict[str, float] = {}
    for arm in manifest["arms"]:
        chance.update((evaluations.get(arm["jobs"][-1]["name"]) or {}).get("chance") or {})
    return chance


def _notes(manifest: Mapping, evaluations: Mapping[str, Mapping]) -> list[str]:
    """What a reader must know to read the figures: empty answers, judge replies that did not parse, CF's sets."""
    notes, sets = [], {}
    for arm in manifest["arms"]:
        results = evaluations.get(arm["jobs"][-1]["name"])
        if not results:
            continue
        benchmarks = results.get("benchmarks", {})
        answers = results.get("answers") or {}
        if answers.get("empty"):
            notes.append(
                f"{arm['name']}: {answers['empty']} of {answers['questions']} answers were empty "
                f"({answers['empty'] / answers['questions']:.0%}); POPE reads an empty answer as yes "
                "(eval_pope.py's rule), MME and multiple choice as wrong."
            )
        judged = {name: entry["result"] for name, entry in benchmarks.items() if name in ("llavabench", "mmvet")}
        for name, result in judged.items():
            bad = result.get("unparsable", result.get("ungraded", 0))
            if bad:
                notes.append(
                    f"{arm['name']}: {bad} of {result['questions']} {name} judge replies gave no score "
                    f"({'left out of the means' if name == 'llavabench' else 'graded 0.0'})."
                )
        guessed = benchmarks.get("mmmu", {}).get("result", {}).get("guessed")
        if guessed:
            notes.append(
                f"{arm['name']}: {guessed} MMMU multiple-choice answers named no option and got MMMU's "
                "random letter (seeded per question)."
            )
        forgetting = benchmarks.get("forgetting", {}).get("result", {}).get("sets")
        if forgetting:
            sets[tuple(forgetting)] = None
    for names in sets:
        notes.append(
            f"CF is the mean accuracy over the classification sets {', '.join(names)}, each weighing the "
            "same (the paper averages its MNIST, CIFAR-10, CIFAR-100 and miniImageNet accuracies)."
        )
    return notes


def best_arms(arms: list[Mapping], metric: str) -> list[str]:
    """The arm(s) with the best value of `metric` (ties all win), by its goal, ignoring noise.

    The report never bolds from this alone (see `uncertainty.significant_best`); it is kept for callers that
    rank arms. None when fewer than two arms have a value, or when all of them tie.
    """
    values = {
        arm["name"]: arm["metrics"][metric] for arm in arms if isinstance(arm["metrics"].get(metric), (int, float))
    }
    goal, target = GOALS.get(metric, ("max", None))
    score = {"max": lambda v: v, "min": lambda v: -v, "target": lambda v: -abs(v - target)}[goal]
    scores = {name: score(value) for name, value in values.items()}
    if len(set(scores.values())) < 2:
        return []
    top = max(scores.values())
    return [name for name, value in scores.items() if value == top]
