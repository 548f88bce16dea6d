"""Read what an experiment's run folder holds: experiment.json, each job's job.json and training metrics, and each
EvalJob's results.json and scored answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vlmtune import storage
from vlmtune.spec.layout import RunLayout


@dataclass(frozen=True)
class RunFiles:
    manifest: dict
    """experiment.json: arms, their jobs (relative folders, stages, steps) and parameters."""
    records: dict[str, dict | None]
    """Job name -> job.json (None: the job has not started)."""
    histories: dict[str, list[dict]]
    """TuningJob name -> metrics.jsonl rows (empty when none were written)."""
    evaluations: dict[str, dict] = field(default_factory=dict)
    """EvalJob name -> results.json (finished evaluations only)."""
    answers: dict[str, dict] = field(default_factory=dict)
    """EvalJob name -> benchmark -> Answers (what the bootstrap re-scores)."""


def read_run(run_dir: str) -> RunFiles:
    """Everything the report needs from `run_dir` (a local folder or an s3:// URI).

    Raises:
        FileNotFoundError: `run_dir` holds no experiment.json (it is not an experiment's output).
    """
    manifest_uri = RunLayout(run_dir).experiment
    if not storage.exists(manifest_uri):
        raise FileNotFoundError(
            f"{manifest_uri} does not exist: give the output folder of an Experiment "
            "(its spec.output.uri), after `vlmtune run` has started it"
        )
    manifest = json.loads(storage.read_bytes(manifest_uri))
    run = RunFiles(manifest, {}, {})
    for job in {job["name"]: job for arm in manifest["arms"] for job in arm["jobs"]}.values():
        folder = storage.join(run_dir, job["path"])
        record = run.records[job["name"]] = _json(RunLayout(folder).record)
        if job["kind"] == "TuningJob":
            run.histories[job["name"]] = _jsonl(RunLayout(folder).metrics)
        elif (record or {}).get("phase") == "Succeeded":
            _read_evaluation(run, job["name"], folder)
    return run


def _read_evaluation(run: RunFiles, name: str, folder: str) -> None:
    """results.json, and every benchmark's scored answers (paths relative to the job's folder, so a copied run
    folder still reports)."""
    from vlmtune.eval.items import item_from_record
    from vlmtune.report.uncertainty import Answers

    results = _json(RunLayout(folder).results)
    if results is None:
        return
    run.evaluations[name] = results
    answers = {}
    for benchmark in results.get("benchmarks", {}):
        rows = _jsonl(RunLayout(folder).scored(benchmark))
        if rows:
            reviews = [row["replies"] for row in rows] if "replies" in rows[0] else None
            answers[benchmark] = Answers(
                [item_from_record(row["item"]) for row in rows], [row["prediction"] for row in rows], reviews
            )
    run.answers[name] = answers


def _json(uri: str) -> dict | None:
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except ValueError:
        return None


def _jsonl(uri: str) -> list[dict]:
    if not storage.exists(uri):
        return []
    return [json.loads(line) for line in storage.read_bytes(uri).decode().splitlines() if line.strip()]
