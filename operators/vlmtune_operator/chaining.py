"""Stage chaining: a job that starts `from: {job: X}` runs only on X's recorded model, never on a guessed path."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from vlmtune.spec import Job, RunLayout


@dataclass(frozen=True)
class Resolution:
    """Whether a job's upstream jobs let it start, and with which models."""

    state: Literal["ready", "wait", "failed"]
    models: dict[str, str] = field(default_factory=dict)
    """Upstream job name -> model URI (complete when `state` is ready)."""
    message: str = ""


def resolve_upstreams(job: Job, upstreams: Mapping[str, Mapping | None]) -> Resolution:
    """Decide from the upstream jobs' statuses (None: not created yet) whether `job` can start.

    An upstream that failed, or succeeded without recording a model, fails the job: waiting would hang forever.
    """
    models, waiting = {}, []
    for name in job.upstream_jobs():
        status = upstreams.get(name)
        phase = (status or {}).get("phase")
        model = ((status or {}).get("artifacts") or {}).get("model")
        if phase == "Failed":
            reason = (status or {}).get("reason") or "Failed"
            return Resolution("failed", message=f"upstream job {name!r} failed ({reason}); fix it and re-apply both")
        if phase == "Succeeded" and not model:
            return Resolution("failed", message=f"upstream job {name!r} succeeded but recorded no model artifact")
        if phase == "Succeeded":
            models[name] = model
        else:
            waiting.append(f"{name} ({phase or 'not created yet'})")
    if waiting:
        return Resolution("wait", models, f"waiting for upstream job(s) to succeed: {', '.join(waiting)}")
    return Resolution("ready", models)


def resolve_document(document: Mapping, models: Mapping[str, str]) -> dict:
    """The job document with `spec.model.from` replaced by `spec.model.pretrained: <upstream model URI>`.

    Raises:
        KeyError: when the upstream's model is not in `models`.
    """
    resolved = copy.deepcopy(dict(document))
    model = resolved.get("spec", {}).get("model", {})
    ref = model.pop("from", None)
    if ref is not None:
        model["pretrained"] = models[ref["job"]]
    return resolved


def artifact_uris(kind: str, output_uri: str, succeeded: bool) -> dict[str, str]:
    """The artifact URIs of a job of `kind`; the model only counts once the job succeeded."""
    return RunLayout(output_uri).artifacts(kind, with_model=succeeded)


def expected_models(jobs: Iterable[Job]) -> dict[str, str]:
    """Each job's model URI as it will be recorded on success (what `vlmtune render` assumes upstream)."""
    uris = {
        job.name: artifact_uris(job.kind, _output_uri(job), succeeded=True)
        for job in jobs
        if _output_uri(job) is not None
    }
    return {name: found["model"] for name, found in uris.items() if "model" in found}


def _output_uri(job: Job) -> str | None:
    output = getattr(job.spec, "output", None)
    return getattr(output, "uri", None)
