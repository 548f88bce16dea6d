"""Which run a RayJob is, and what that run recorded: status figures and artifacts come only from this job's run.

The RayJob carries the run's identity in annotations written when it was built: the hash `vlmtune run` records in
`<output>/job.json` (`specHash`) and the output folder it was given. A record with another name, kind or hash is
another run's (an older spec, another job writing to the same folder): its figures and its model are not ours.
Artifacts come from the RayJob (what the run was given) and, once it succeeded, from its record: never from the
job's current spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from vlmtune.spec import KINDS
from vlmtune_operator.chaining import artifact_uris

RUN_HASH_ANNOTATION = "vlmtune.dev/run-hash"
OUTPUT_ANNOTATION = "vlmtune.dev/output-uri"
UNREAD = object()
"""The store could not be asked (no credentials, unreachable): nothing is known about the run's record."""


@dataclass(frozen=True)
class Run:
    """One run of a job: its identity, and where it writes."""

    kind: str
    name: str
    spec_hash: str
    output_uri: str


def run_hash(document: Mapping) -> str:
    """`specHash` of the job.json that `vlmtune run --spec-json DOCUMENT` writes.

    Mirrors `vlmtune.runners.pipeline.spec_hash` for a job whose upstream models are already resolved (the
    operator imports no runner; a test holds the two equal): the worker count is left out, as a resumed run may
    change it.
    """
    job = KINDS[document["kind"]].model_validate(document)
    spec = job.to_doc()["spec"]
    for field in ("workers", "elastic"):
        spec.get("resources", {}).pop(field, None)
    content = {"kind": job.kind, "spec": spec, "upstreams": {}}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_of(rayjob: Mapping | None, kind: str, name: str) -> Run | None:
    """The run a RayJob of ours carries, or None for one built before runs were recorded on it."""
    annotations = ((rayjob or {}).get("metadata") or {}).get("annotations") or {}
    if RUN_HASH_ANNOTATION not in annotations or OUTPUT_ANNOTATION not in annotations:
        return None
    return Run(kind, name, annotations[RUN_HASH_ANNOTATION], annotations[OUTPUT_ANNOTATION])


def belongs(record: Mapping | None, run: Run) -> bool:
    """Whether a job.json is the record of `run` (and not of an older spec or another job's run)."""
    return bool(record) and (record.get("kind"), record.get("name"), record.get("specHash")) == (
        run.kind,
        run.name,
        run.spec_hash,
    )


def run_artifacts(run: Run, record, succeeded: bool) -> tuple[dict[str, str], str]:
    """The run's artifact URIs, and a note when a succeeded run's model cannot be vouched for.

    Args:
        record: the run folder's job.json (None: absent), or UNREAD when the store could not be asked; then the
            model is where the run was told to export it.
    """
    artifacts = artifact_uris(run.kind, run.output_uri, succeeded=False)
    if not succeeded:
        return artifacts, ""
    layout = artifact_uris(run.kind, run.output_uri, succeeded=True)
    if record is UNREAD:
        return layout, ""
    if belongs(record, run) and record.get("phase") == "Succeeded":
        recorded = {
            key: value
            for key, value in (record.get("artifacts") or {}).items()
            if key in layout and isinstance(value, str)
        }
        return artifacts | recorded, ""
    return artifacts, (
        f"the run folder {run.output_uri} holds no record of this run (job.json is missing or "
        "belongs to another run): no model is recorded, so no job can start from this one"
    )
