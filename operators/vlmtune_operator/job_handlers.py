"""TuningJob and EvalJob handlers: one idempotent `reconcile` (create, resume, update) and a status timer.

Both read the live objects, decide with the pure modules and write status; no state lives in the process, so an
operator restart at any point continues from what the API server holds. A job marked Failed holds no RayJob that
can still run: the handler deletes it first, and writes Failed only once the delete went through.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import kopf

from vlmtune.spec import QUEUE_LABEL, Job, Phase
from vlmtune_operator.chaining import resolve_upstreams
from vlmtune_operator.figures import figures
from vlmtune_operator.objects import owner_reference, status_of, with_owner
from vlmtune_operator.rayjob import SPEC_HASH_ANNOTATION, BuildError, build_rayjob, rayjob_name, spec_hash
from vlmtune_operator.reporting import (
    annotation,
    compose_status,
    fail,
    is_ours,
    job_or_fail,
    patch_status,
    refuse_foreign,
    spec_condition,
)
from vlmtune_operator.run import UNREAD, belongs, run_artifacts, run_of
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.status import (
    OWNER,
    STAGE_WAIT,
    SUSPENDED_BY_USER,
    TERMINAL,
    Deadlines,
    Verdict,
    advance,
    can_still_run,
    observe,
    parse_time,
    vanished_verdict,
)
from vlmtune_operator.store import StoreUnavailable, read_run

log = logging.getLogger(__name__)
STARTED = {"Initializing", "Waiting", "Running", "Retrying", "Complete", "Failed"}
"""jobDeploymentStatus values of an admitted, unsuspended RayJob: only then may its output hold this run's files
(Suspending and Suspended are not among them: a queued job must not show an older run's progress)."""


def reconcile(body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig, now: datetime | None = None) -> None:
    """Make sure the job's RayJob exists (once its upstream jobs succeeded), or none while `spec.suspend` is true.

    Raises:
        kopf.TemporaryError: an upstream job has not succeeded yet, or a deleted RayJob is still going away.
        kopf.PermanentError: the job cannot run (reason and message are in status).
    """
    now = now or datetime.now(timezone.utc)
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL:
        return  # a finished training run is a record, never re-run by a restart of the operator
    job = job_or_fail(body, patch, previous, now)
    namespace = body["metadata"]["namespace"]
    existing = client.get_rayjob(namespace, rayjob_name(job.kind, job.name))
    if getattr(job.spec, "suspend", None):
        _pause(job, existing, body, patch, client, previous, now)
        return
    if existing is not None:
        if (existing.get("metadata") or {}).get("deletionTimestamp") and is_ours(existing, job.kind, job.name):
            raise kopf.TemporaryError(f"RayJob {existing['metadata']['name']} is still being deleted", delay=10)
        _adopt(existing, job, body, patch, runtime, previous, now)
        return
    if previous.get("rayJobName") and previous.get("reason") != SUSPENDED_BY_USER:
        fail(body, patch, previous, vanished_verdict(previous["rayJobName"]), now)
    models = _await_upstreams(job, body, patch, client, runtime, previous, now)
    try:
        rayjob = build_rayjob(job, runtime, models, namespace, int(previous.get("activeSeconds") or 0))
        created = client.create_rayjob(namespace, with_owner(rayjob, owner_reference(body)))
    except BuildError as err:  # RayJobRefused too: what admission refuses it refuses again
        fail(body, patch, previous, Verdict(Phase.Failed, err.reason, str(err), "done"), now)
    _adopt(created, job, body, patch, runtime, previous, now)


def refresh_status(
    body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig, now: datetime | None = None, stores=None
) -> None:
    """Timer body: map the RayJob's and the Kueue Workload's state, and this run's files (progress, metrics, eval
    headline; skipped without `stores`), onto the job's status; carry out a Failed verdict on the RayJob."""
    now = now or datetime.now(timezone.utc)
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL:
        return
    namespace, kind, name = body["metadata"]["namespace"], body["kind"], body["metadata"]["name"]
    rayjob = client.get_rayjob(namespace, rayjob_name(kind, name))
    suspend = ((body.get("spec") or {}).get("suspend")) is True
    if (suspend or STAGE_WAIT.get(previous.get("stage") or "") == OWNER) and not _finished(rayjob, kind, name):
        reconcile(body, patch, client, runtime, now)  # pausing, or resuming: the reconcile owns both
        return
    if not previous.get("rayJobName"):
        return  # reconcile owns the status until a RayJob exists
    uid = ((rayjob or {}).get("metadata") or {}).get("uid")
    workload = client.find_workload(namespace, uid) if uid else None
    run = run_of(rayjob, kind, name)
    found, record = _read_run(stores, namespace, kind, rayjob, run)
    new = observe(
        kind=kind,
        generation=body["metadata"].get("generation"),
        previous=previous,
        rayjob=rayjob,
        workload=workload,
        deadlines=deadlines_of(body, runtime),
        now=now,
        figures=found,
        run=run,
        record=record,
    )
    if new is None:
        return
    if new["phase"] == Phase.Failed.value and can_still_run(rayjob) and is_ours(rayjob, kind, name):
        client.delete_rayjob(namespace, rayjob["metadata"]["name"], uid)  # raises: Failed is not written yet
    patch_status(patch, previous, new)


def _finished(rayjob: Mapping | None, kind: str, name: str) -> bool:
    """The job's RayJob reached an end of its own (a pause asked for meanwhile comes too late)."""
    return (
        rayjob is not None
        and is_ours(rayjob, kind, name)
        and not can_still_run(rayjob)
        and not (rayjob.get("metadata") or {}).get("deletionTimestamp")
    )


def deadlines_of(body: Mapping, runtime: RuntimeConfig) -> Deadlines:
    resources = (body.get("spec") or {}).get("resources") or {}
    active = resources.get("activeDeadlineSeconds") or runtime.active_deadline_seconds
    return Deadlines(runtime.readiness_deadline_seconds, runtime.queue_deadline_seconds, active)


def _read_run(stores, namespace: str, kind: str, rayjob: Mapping | None, run) -> tuple[dict | None, object]:
    """This run's figures (None: keep the previous; {}: clear them, the folder holds another run) and its record
    (UNREAD when the store could not be asked)."""
    status = (rayjob or {}).get("status") or {}
    started = not (rayjob or {}).get("spec", {}).get("suspend") and status.get("jobDeploymentStatus") in STARTED
    reader = stores.for_namespace(namespace) if stores is not None and run is not None else None
    if reader is None or not started:
        return None, UNREAD
    try:
        files, whole = read_run(reader, kind, run.output_uri)
    except StoreUnavailable as err:  # the RayJob's state still counts; the figures wait for the next tick
        log.warning("%s/%s: %s", kind, run.name, err)
        return None, UNREAD
    if not belongs(files.record, run):
        return {}, files.record
    return figures(kind, files, _planned_steps(rayjob), whole).fields(), files.record


def _planned_steps(rayjob: Mapping) -> int | None:
    try:  # the document the run was given, not the job's current spec
        document = json.loads(shlex.split(rayjob["spec"]["entrypoint"])[3])
        return ((document.get("spec") or {}).get("training") or {}).get("maxSteps")
    except (KeyError, IndexError, ValueError):
        return None


def _pause(
    job: Job, rayjob: Mapping | None, body: Mapping, patch: kopf.Patch, client, previous: dict, now: datetime
) -> None:
    """spec.suspend: delete the job's RayJob (freeing its GPUs and quota) and wait for the owner to resume it."""
    namespace = body["metadata"]["namespace"]
    ours = rayjob is not None and is_ours(rayjob, job.kind, job.name)
    if _finished(rayjob, job.kind, job.name):
        return  # it finished first: the timer records how
    if ours and can_still_run(rayjob):
        client.delete_rayjob(namespace, rayjob["metadata"]["name"], rayjob["metadata"]["uid"])
    clock = advance(previous, False, now)
    stage = "suspending" if ours else "paused"
    message = "spec.suspend is true: the RayJob is deleted and none is created; set it to false to resume" + (
        f" (waiting for RayJob {rayjob['metadata']['name']} to go)" if ours else ""
    )
    verdict = Verdict(Phase.Suspended, SUSPENDED_BY_USER, message, stage)
    status = compose_status(body, previous, verdict, now, activeSeconds=clock.seconds)
    patch_status(patch, previous, status)


def _adopt(
    rayjob: Mapping, job: Job, body: Mapping, patch: kopf.Patch, runtime: RuntimeConfig, previous: dict, now: datetime
) -> None:
    """Record an existing RayJob as the job's child, refusing one that belongs to another job."""
    refuse_foreign(rayjob, job, body, patch, previous, now)
    meta = rayjob.get("metadata") or {}
    status = previous
    if not previous.get("rayJobName") or STAGE_WAIT.get(previous.get("stage") or "") == OWNER:
        status = compose_status(
            body,
            previous,
            _created(rayjob, runtime, now),
            now,
            rayJobName=meta["name"],
            queue=(meta.get("labels") or {}).get(QUEUE_LABEL),
            waitingSince=now,
            artifacts=_artifacts(rayjob, job),
        )
    drifted = annotation(rayjob, SPEC_HASH_ANNOTATION) != spec_hash(job.to_doc())
    status = dict(status, conditions=spec_condition(status.get("conditions") or [], drifted, body, now))
    patch_status(patch, previous, status)


def _created(rayjob: Mapping, runtime: RuntimeConfig, now: datetime) -> Verdict:
    name = rayjob["metadata"]["name"]
    queue = ((rayjob.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
    if queue:
        deadline = now + timedelta(seconds=runtime.queue_deadline_seconds) if runtime.queue_deadline_seconds else None
        return Verdict(
            Phase.Queued, "RayJobCreated", f"submitted RayJob {name} to Kueue queue {queue}", "queued", deadline
        )
    return Verdict(
        Phase.Pending,
        "RayJobCreated",
        f"created RayJob {name} without a Kueue queue; KubeRay starts it",
        "creating",
        now + timedelta(seconds=runtime.readiness_deadline_seconds),
    )


def _artifacts(rayjob: Mapping, job: Job) -> dict | None:
    run = run_of(rayjob, job.kind, job.name)
    return None if run is None else run_artifacts(run, None, succeeded=False)[0]


def _upstream_deadline(upstreams, runtime: RuntimeConfig) -> datetime | None:
    """The latest of the upstream jobs' own deadlines, plus one poll: by then each has run or failed, and so has
    this job. None when an upstream waits for its owner (spec.suspend), which no deadline bounds."""
    deadlines = [
        parse_time((upstream.get("status") or {}).get("deadline"))
        for upstream in upstreams
        if (upstream.get("status") or {}).get("phase") != Phase.Succeeded.value
    ]
    if not deadlines or None in deadlines:
        return None
    return max(deadlines) + timedelta(seconds=runtime.upstream_poll_seconds)


def _await_upstreams(
    job: Job, body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig, previous: dict, now: datetime
) -> dict[str, str]:
    """The upstream jobs' recorded models once all succeeded; meanwhile a WaitingForUpstream status and a retry.

    An upstream that failed fails this job; one seen while waiting that then disappears fails it too
    (UpstreamDeleted); one never created fails it after the queue deadline (UpstreamMissing).

    Raises:
        kopf.TemporaryError: to look again after `upstreamPollSeconds`.
        kopf.PermanentError: the job can never start.
    """
    names = job.upstream_jobs()
    if not names:
        return {}
    namespace = body["metadata"]["namespace"]
    found = {name: client.get_job(namespace, name) for name in names}
    seen = dict(previous.get("upstreams") or {})
    for name, upstream in found.items():
        if upstream is None and name in seen:
            message = f"upstream job {name!r} was deleted while this job waited for it; apply it again, then this job"
            fail(body, patch, previous, Verdict(Phase.Failed, "UpstreamDeleted", message, "done"), now)
        if upstream is not None:
            seen[name] = upstream["metadata"].get("uid") or ""
    resolution = resolve_upstreams(job, {name: status_of(upstream) for name, upstream in found.items()})
    if resolution.state == "failed":
        fail(body, patch, previous, Verdict(Phase.Failed, "UpstreamFailed", resolution.message, "done"), now)
    if resolution.state == "ready":
        return resolution.models
    since = parse_time(previous.get("waitingSince")) if previous.get("stage") == "waiting-upstream" else None
    since = since or now
    if any(upstream is None for upstream in found.values()) and runtime.queue_deadline_seconds:
        deadline = since + timedelta(seconds=runtime.queue_deadline_seconds)
        if now > deadline:
            message = f"{resolution.message}; no such job appeared within {runtime.queue_deadline_seconds}s"
            fail(body, patch, previous, Verdict(Phase.Failed, "UpstreamMissing", message, "done"), now)
    else:
        deadline = _upstream_deadline(found.values(), runtime)
    verdict = Verdict(Phase.Pending, "WaitingForUpstream", resolution.message, "waiting-upstream", deadline)
    patch_status(
        patch, previous, compose_status(body, previous, verdict, now, upstreams=seen or None, waitingSince=since)
    )
    raise kopf.TemporaryError(resolution.message, delay=runtime.upstream_poll_seconds)
