"""Read what an experiment's run folder holds: experiment.json, each job's job.json and training metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass

from vlmtune import storage

EXPERIMENT_FILE, RECORD_FILE, METRICS_FILE = "experiment.json", "job.json", "metrics.jsonl"


@dataclass(frozen=True)
class RunFiles:
    manifest: dict
    """experiment.json: arms, their jobs (relative folders, stages, steps) and parameters."""
    records: dict[str, dict | None]
    """Job name -> job.json (None: the job has not started)."""
    histories: dict[str, list[dict]]
    """TuningJob name -> metrics.jsonl rows (empty when none were written)."""


def read_run(run_dir: str) -> RunFiles:
    """Everything the report needs from `run_dir` (a local folder or an s3:// URI).

    Raises:
        FileNotFoundError: `run_dir` holds no experiment.json (it is not an experiment's output).
    """
    manifest_uri = storage.join(run_dir, EXPERIMENT_FILE)
    if not storage.exists(manifest_uri):
        raise FileNotFoundError(f"{manifest_uri} does not exist: give the output folder of an Experiment "
                                "(its spec.output.uri), after `vlmtune run` has started it")
    manifest = json.loads(storage.read_bytes(manifest_uri))
    records, histories = {}, {}
    for job in {job["name"]: job for arm in manifest["arms"] for job in arm["jobs"]}.values():
        folder = storage.join(run_dir, job["path"])
        records[job["name"]] = _json(storage.join(folder, RECORD_FILE))
        if job["kind"] == "TuningJob":
            histories[job["name"]] = _jsonl(storage.join(folder, METRICS_FILE))
    return RunFiles(manifest, records, histories)


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
