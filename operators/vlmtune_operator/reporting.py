"""How a handler records what it decided: a status merge patch, a permanent failure, the SpecOutOfDate condition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NoReturn

import kopf

from vlmtune.spec import Condition, Job, Phase
from vlmtune_operator.objects import InvalidJob, job_from_body
from vlmtune_operator.rayjob import JOB_LABEL, KIND_LABEL
from vlmtune_operator.status import Verdict, compose, status_patch

SPEC_OUT_OF_DATE = "SpecOutOfDate"


def fail(body: Mapping, patch: kopf.Patch, previous: dict, verdict: Verdict, now: datetime, **fields) -> NoReturn:
    """Write the Failed verdict and stop the handler for good.

    Raises:
        kopf.PermanentError: always, with the verdict's message.
    """
    patch_status(patch, previous, compose_status(body, previous, verdict, now, **fields))
    raise kopf.PermanentError(verdict.message)


def compose_status(body: Mapping, previous: dict, verdict: Verdict, now: datetime, **fields) -> dict:
    return compose(previous, verdict, body["metadata"].get("generation"), now, kind=body.get("kind"), **fields)


def patch_status(patch: kopf.Patch, previous: Mapping, new: Mapping) -> None:
    patch.status.update(status_patch(previous, new))


def job_or_fail(body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> Job:
    try:
        return job_from_body(body)
    except InvalidJob as err:
        fail(body, patch, previous, Verdict(Phase.Failed, "InvalidSpec", str(err), "done"), now)


def is_ours(rayjob: Mapping, kind: str, name: str) -> bool:
    """The RayJob was built for the job `kind`/`name` (and is not another job's that took the name)."""
    labels = (rayjob.get("metadata") or {}).get("labels") or {}
    return labels.get(JOB_LABEL) == name and labels.get(KIND_LABEL) == kind


def refuse_foreign(rayjob: Mapping, job, body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> None:
    if not is_ours(rayjob, job.kind, job.name):
        meta = rayjob.get("metadata") or {}
        labels = meta.get("labels") or {}
        message = f"RayJob {meta.get('name')} exists and belongs to {labels.get(KIND_LABEL)}/{labels.get(JOB_LABEL)}"
        fail(body, patch, previous, Verdict(Phase.Failed, "NameConflict", message, "done"), now)


def annotation(obj: Mapping, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


JOB_DRIFT = (
    "the spec changed after the RayJob was created; the running RayJob keeps the old spec. "
    "Delete and re-apply the job to run the new one"
)


def spec_condition(conditions: list, drifted: bool, body: Mapping, now: datetime, explain: str = JOB_DRIFT) -> list:
    """SpecOutOfDate: a running training job is never restarted behind its owner's back (the CRD makes `spec`
    immutable; this is for objects stored before it did, and for an Experiment's children)."""
    before = next((c for c in conditions if c["type"] == SPEC_OUT_OF_DATE), None)
    if before is None and not drifted:
        return conditions
    state = "True" if drifted else "False"
    since = before["lastTransitionTime"] if before and before["status"] == state else now
    message = explain if drifted else ""
    condition = Condition(
        type=SPEC_OUT_OF_DATE,
        status=state,
        reason="SpecChanged" if drifted else "SpecApplied",
        message=message,
        last_transition_time=since,
        observed_generation=body["metadata"].get("generation"),
    ).to_doc()
    return [c for c in conditions if c["type"] != SPEC_OUT_OF_DATE] + [condition]
