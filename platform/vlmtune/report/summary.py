"""The JSON summary of an experiment (pure): per arm its budget, state and metrics, and the best arm per metric."""

from __future__ import annotations

from collections.abc import Mapping

SCHEMA_VERSION = 1
GOALS: dict[str, tuple[str, float | None]] = {
    "loss.final": ("min", None),
    # POPE asks as many "no" as "yes" questions: a yes-ratio far from 0.5 either way is a bias.
    "pope.yesRatio": ("target", 0.5),
}
"""How a metric's best value is chosen; any other metric: the highest."""
TRAINING_METRICS = ("samples", "loss.final")


def summarize(manifest: Mapping, records: Mapping[str, Mapping | None], generated_at: str | None = None) -> dict:
    """The summary.json document of an experiment.

    Args:
        manifest: experiment.json.
        records: job name -> job.json (None when the job has not started).
        generated_at: a timestamp to record.
    """
    arms = [_arm(arm, records) for arm in manifest["arms"]]
    evaluated = [key for arm in arms for key in arm["metrics"] if key not in TRAINING_METRICS]
    metrics = [*TRAINING_METRICS, *dict.fromkeys(evaluated)]
    return {"schemaVersion": SCHEMA_VERSION, "experiment": manifest["experiment"], "study": manifest["study"],
            "generatedAt": generated_at, "metrics": metrics, "arms": arms,
            "best": {metric: best_arms(arms, metric) for metric in metrics if metric != "samples"}}


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
    return {"name": arm["name"], "params": dict(arm.get("params") or {}), "budgetSamples": arm["budgetSamples"],
            "complete": all(job["phase"] == "Succeeded" for job in jobs), "metrics": metrics, "jobs": jobs}


def _job(job: Mapping, record: Mapping | None) -> dict:
    record = record or {}
    return {"name": job["name"], "kind": job["kind"], "stage": job["stage"], "path": job["path"],
            "phase": record.get("phase", "NotStarted"), "specHash": record.get("specHash"),
            "finishedAt": record.get("finishedAt"), "metrics": dict(record.get("metrics") or {})}


def best_arms(arms: list[Mapping], metric: str) -> list[str]:
    """The arm(s) with the best value of `metric` (ties all win).

    None when fewer than two arms have a value, or when all of them tie: nothing to tell apart.
    """
    values = {arm["name"]: arm["metrics"][metric] for arm in arms
              if isinstance(arm["metrics"].get(metric), (int, float))}
    goal, target = GOALS.get(metric, ("max", None))
    score = {"max": lambda v: v, "min": lambda v: -v, "target": lambda v: -abs(v - target)}[goal]
    scores = {name: score(value) for name, value in values.items()}
    if len(set(scores.values())) < 2:
        return []
    top = max(scores.values())
    return [name for name, value in scores.items() if value == top]
