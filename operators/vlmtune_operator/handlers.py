"""kopf handlers: create, resume and update all run one idempotent `reconcile`; a timer keeps status true.

Handlers read, build, apply and patch status; every decision lives in the pure modules. Retries are carried
by the exception type: `kopf.TemporaryError` (upstream not done yet) retries later, `kopf.PermanentError`
(invalid job, failed upstream, vanished RayJob) stops with the reason in status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone

import kopf

from vlmtune.spec import KINDS, Job
from vlmtune.spec.base import API_GROUP
from vlmtune.spec.crd import VERSION, plural_of
from vlmtune.spec.metadata import QUEUE_LABEL
from vlmtune.spec.status import Condition, Phase

from vlmtune_operator.chaining import resolve_upstreams
from vlmtune_operator.objects import InvalidJob, job_from_body, owner_reference, status_of, with_owner
from vlmtune_operator.rayjob import (JOB_LABEL, KIND_LABEL, SPEC_HASH_ANNOTATION, BuildError, build_rayjob,
                                     rayjob_name, spec_hash)
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.status import TERMINAL, Verdict, compose, observe, status_patch, vanished_verdict

SPEC_OUT_OF_DATE = "SpecOutOfDate"


def reconcile(body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig, now: datetime | None = None) -> None:
    """Make sure the job's RayJob exists (creating it once its upstream jobs succeeded) and say so in status.

    Raises:
        kopf.TemporaryError: an upstream job has not succeeded yet.
        kopf.PermanentError: the job cannot run (reason and message are in status).
    """
    now = now or datetime.now(timezone.utc)
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL:
        return  # a finished training run is a record, never re-run by a restart of the operator
    job = _job_or_fail(body, patch, previous, now)
    namespace = body["metadata"]["namespace"]
    existing = client.get_rayjob(namespace, rayjob_name(job.kind, job.name))
    if existing is not None:
        _adopt(existing, job, body, patch, previous, now)
        return
    if previous.get("rayJobName"):
        _fail(body, patch, previous, vanished_verdict(previous["rayJobName"]), now)
    upstreams = {name: status_of(client.get_job(namespace, name)) for name in job.upstream_jobs()}
    resolution = resolve_upstreams(job, upstreams)
    if resolution.state == "failed":
        _fail(body, patch, previous, Verdict(Phase.Failed, "UpstreamFailed", resolution.message, "done"), now)
    if resolution.state == "wait":
        verdict = Verdict(Phase.Pending, "WaitingForUpstream", resolution.message, "waiting-upstream")
        _patch_status(patch, previous, _compose(body, previous, verdict, now))
        raise kopf.TemporaryError(resolution.message, delay=runtime.upstream_poll_seconds)
    try:
        rayjob = build_rayjob(job, runtime, resolution.models, namespace)
    except BuildError as err:
        _fail(body, patch, previous, Verdict(Phase.Failed, "InvalidForCluster", str(err), "done"), now)
    created = client.create_rayjob(namespace, with_owner(rayjob, owner_reference(body)))
    _adopt(created, job, body, patch, previous, now)


def refresh_status(body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig,
                   now: datetime | None = None) -> None:
    """Timer body: map the RayJob's and the Kueue Workload's state onto the job's status."""
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL or not previous.get("rayJobName"):
        return  # reconcile owns the status until a RayJob exists
    namespace = body["metadata"]["namespace"]
    rayjob = client.get_rayjob(namespace, previous["rayJobName"])
    uid = ((rayjob or {}).get("metadata") or {}).get("uid")
    workload = client.find_workload(namespace, uid) if uid else None
    new = observe(kind=body["kind"], output_uri=_output_uri(body), generation=body["metadata"].get("generation"),
                  previous=previous, rayjob=rayjob, workload=workload,
                  readiness_deadline_seconds=runtime.readiness_deadline_seconds, now=now or datetime.now(timezone.utc))
    if new is not None:
        _patch_status(patch, previous, new)


def _adopt(rayjob: Mapping, job: Job, body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> None:
    """Record an existing RayJob as the job's child, refusing one that belongs to another job."""
    meta = rayjob.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(JOB_LABEL) != job.name or labels.get(KIND_LABEL) != job.kind:
        message = f"RayJob {meta.get('name')} exists and belongs to {labels.get(KIND_LABEL)}/{labels.get(JOB_LABEL)}"
        _fail(body, patch, previous, Verdict(Phase.Failed, "NameConflict", message, "done"), now)
    status = previous
    if not previous.get("rayJobName"):
        queue = labels.get(QUEUE_LABEL)
        message = f"submitted RayJob {meta['name']} to Kueue queue {queue}" if queue else "RayJob created"
        verdict = Verdict(Phase.Queued, "RayJobCreated", message, "queued")
        status = _compose(body, previous, verdict, now, rayJobName=meta["name"], queue=queue)
    drifted = (meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION) != spec_hash(job.to_doc())
    status = dict(status, conditions=_spec_condition(status.get("conditions") or [], drifted, body, now))
    _patch_status(patch, previous, status)


def _spec_condition(conditions: list, drifted: bool, body: Mapping, now: datetime) -> list:
    """SpecOutOfDate: a running training job is never restarted behind its owner's back."""
    before = next((c for c in conditions if c["type"] == SPEC_OUT_OF_DATE), None)
    if before is None and not drifted:
        return conditions
    state = "True" if drifted else "False"
    since = before["lastTransitionTime"] if before and before["status"] == state else now
    message = ("the spec changed after the RayJob was created; the running RayJob keeps the old spec. "
               "Delete and re-apply the job to run the new one") if drifted else ""
    condition = Condition(type=SPEC_OUT_OF_DATE, status=state, reason="SpecChanged" if drifted else "SpecApplied",
                          message=message, last_transition_time=since,
                          observed_generation=body["metadata"].get("generation")).to_doc()
    return [c for c in conditions if c["type"] != SPEC_OUT_OF_DATE] + [condition]


def _job_or_fail(body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> Job:
    try:
        return job_from_body(body)
    except InvalidJob as err:
        _fail(body, patch, previous, Verdict(Phase.Failed, "InvalidSpec", str(err), "done"), now)


def _fail(body: Mapping, patch: kopf.Patch, previous: dict, verdict: Verdict, now: datetime):
    _patch_status(patch, previous, _compose(body, previous, verdict, now))
    raise kopf.PermanentError(verdict.message)


def _compose(body: Mapping, previous: dict, verdict: Verdict, now: datetime, **fields) -> dict:
    return compose(previous, verdict, body["metadata"].get("generation"), now, kind=body.get("kind"),
                   output_uri=_output_uri(body), **fields)


def _output_uri(body: Mapping) -> str | None:
    return ((body.get("spec") or {}).get("output") or {}).get("uri")


def _patch_status(patch: kopf.Patch, previous: Mapping, new: Mapping) -> None:
    patch.status.update(status_patch(previous, new))


def configure(settings: kopf.OperatorSettings, **_) -> None:
    """Keep kopf's bookkeeping in annotations: our status schema is structural and would prune `status.kopf`."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
    settings.posting.level = logging.WARNING  # Kubernetes events for problems only, not every handler run


def register(registry: kopf.OperatorRegistry, client_factory, runtime: RuntimeConfig,
             kinds: Mapping[str, type] = KINDS) -> None:
    """Attach the handlers for every job kind to `registry`; `client_factory()` gives the API facade."""
    clients: list = []

    def client():
        if not clients:  # built lazily: in-cluster credentials exist only once the operator runs
            clients.append(client_factory())
        return clients[0]

    def on_change(body, patch, **_):
        reconcile(body, patch, client(), runtime)

    def on_timer(body, patch, **_):
        refresh_status(body, patch, client(), runtime)

    for kind in kinds:
        plural = plural_of(kind)
        for cause, event in (("create", kopf.on.create), ("resume", kopf.on.resume), ("update", kopf.on.update)):
            event(API_GROUP, VERSION, plural, registry=registry, id=f"reconcile-{cause}")(on_change)
        kopf.timer(API_GROUP, VERSION, plural, registry=registry, id="status",
                   interval=runtime.status_interval_seconds)(on_timer)
