"""Experiment handlers: one reconcile, run on change and by the timer alike.

It gets or creates one child job per generated job, aggregates the children's statuses, and runs the report
RayJob once all succeeded. The children are ordinary TuningJobs and EvalJobs: their own handlers run them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

import kopf

from vlmtune.spec import QUEUE_LABEL, Experiment, Phase, expand
from vlmtune_operator.experiment import (
    aggregate,
    child_claim,
    child_documents,
    report_rayjob,
    report_uri,
    vanished_child,
)
from vlmtune_operator.objects import owner_reference, status_of, with_owner
from vlmtune_operator.rayjob import SPEC_HASH_ANNOTATION, BuildError, rayjob_name
from vlmtune_operator.reporting import (
    annotation,
    compose_status,
    fail,
    job_or_fail,
    patch_status,
    refuse_foreign,
    spec_condition,
)
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.status import TERMINAL, Verdict, admission_of, can_still_run, rayjob_verdict, vanished_verdict


def reconcile_experiment(
    body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig, now: datetime | None = None
) -> None:
    """Get or create the experiment's child jobs, aggregate their statuses, and once every child succeeded,
    run the report RayJob; idempotent, so the timer runs it too.

    Raises:
        kopf.TemporaryError: a child of an earlier experiment of the same name is still being deleted.
        kopf.PermanentError: invalid experiment, a child name taken by another object, a vanished child.
    """
    now = now or datetime.now(timezone.utc)
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL:
        return
    experiment = job_or_fail(body, patch, previous, now)
    namespace = body["metadata"]["namespace"]
    expansion = expand(experiment)
    statuses, drifted = {}, False
    for document in child_documents(expansion, namespace):
        child = _ensure_child(document, body, patch, client, previous, now)
        statuses[document["metadata"]["name"]] = status_of(child) or {}
        drifted |= annotation(child, SPEC_HASH_ANNOTATION) != annotation(document, SPEC_HASH_ANNOTATION)
    summary = aggregate(expansion, statuses)
    verdict, fields = summary.verdict, summary.fields()
    if summary.all_succeeded:
        verdict, report = _report_step(experiment, body, patch, client, runtime, previous, now)
        fields |= report
    status = compose_status(body, previous, verdict, now, **fields)
    status = dict(
        status, conditions=spec_condition(status.get("conditions") or [], drifted, body, now, EXPERIMENT_DRIFT)
    )
    patch_status(patch, previous, status)


EXPERIMENT_DRIFT = (
    "the spec changed after the child jobs were created; they keep the old spec. "
    "Delete and re-apply the experiment to run the new one"
)


def _ensure_child(document: dict, body: Mapping, patch: kopf.Patch, client, previous: dict, now: datetime) -> dict:
    """The live child job of `document`, created (owned by the experiment) when it does not exist yet."""
    namespace, name, kind = body["metadata"]["namespace"], document["metadata"]["name"], document["kind"]
    existing = client.get_job(namespace, name, kind)
    if existing is None:
        verdict = vanished_child(kind, name, previous)
        if verdict is not None:
            fail(body, patch, previous, verdict, now)
        existing = client.create_job(namespace, with_owner(document, owner_reference(body)))
    claim = child_claim(kind, name, existing, body["metadata"].get("uid"))
    if claim == "wait":
        raise kopf.TemporaryError(f"{kind} {name} of an earlier experiment is being deleted", delay=10)
    if isinstance(claim, Verdict):
        fail(body, patch, previous, claim, now)
    return existing


def _report_step(
    experiment: Experiment,
    body: Mapping,
    patch: kopf.Patch,
    client,
    runtime: RuntimeConfig,
    previous: dict,
    now: datetime,
) -> tuple[Verdict, dict]:
    """The report RayJob's state as the experiment's verdict (it is created here once all children succeeded)."""
    namespace = body["metadata"]["namespace"]
    rayjob = client.get_rayjob(namespace, rayjob_name(experiment.kind, experiment.name))
    if rayjob is None:
        if previous.get("rayJobName"):
            fail(body, patch, previous, vanished_verdict(previous["rayJobName"]), now)
        try:
            built = report_rayjob(experiment, runtime, namespace)
            rayjob = client.create_rayjob(namespace, with_owner(built, owner_reference(body)))
        except BuildError as err:  # RayJobRefused too
            fail(body, patch, previous, Verdict(Phase.Failed, err.reason, str(err), "done"), now)
    meta = rayjob.get("metadata") or {}
    refuse_foreign(rayjob, experiment, body, patch, previous, now)
    fields = {
        "rayJobName": meta["name"],
        "queue": (meta.get("labels") or {}).get(QUEUE_LABEL),
        "dashboardURL": (rayjob.get("status") or {}).get("dashboardURL") or None,
    }
    workload = client.find_workload(namespace, meta["uid"]) if meta.get("uid") else None
    step = rayjob_verdict(
        rayjob, admission_of(workload), previous.get("phase"), now, runtime.readiness_deadline_seconds
    )
    if step.phase is Phase.Succeeded:
        return Verdict(
            Phase.Succeeded, "ReportWritten", f"report written to {report_uri(experiment)}", "done"
        ), fields | {"report": report_uri(experiment)}
    if step.phase is Phase.Failed:
        if can_still_run(rayjob):  # e.g. past its readiness deadline: a Failed experiment holds no runnable RayJob
            client.delete_rayjob(namespace, meta["name"], meta["uid"])
        return Verdict(Phase.Failed, f"Report{step.reason}", step.message or "the report RayJob failed", "done"), fields
    message = f"all jobs succeeded; report RayJob {meta['name']}: {step.reason}"
    return Verdict(Phase.Running, "Reporting", message, "reporting"), fields
