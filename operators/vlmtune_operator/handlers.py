"""kopf handlers: create, resume and update all run one idempotent `reconcile`; a timer keeps status true.

Handlers read, build, apply and patch status; every decision lives in the pure modules. Retries are carried
by the exception type: `kopf.TemporaryError` (upstream not done yet) retries later, `kopf.PermanentError`
(invalid job, failed upstream, vanished RayJob) stops with the reason in status.

Experiments get their own reconcile, run on change and by the timer alike: it gets or creates one child job
per generated job, aggregates the children's statuses, and runs the report RayJob once all succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone

import kopf

from vlmtune.spec import KINDS, Experiment, Job, expand
from vlmtune.spec.base import API_GROUP
from vlmtune.spec.crd import VERSION, plural_of
from vlmtune.spec.experiment import EXPERIMENT_LABEL
from vlmtune.spec.metadata import QUEUE_LABEL
from vlmtune.spec.status import Condition, Phase

from vlmtune_operator.chaining import resolve_upstreams
from vlmtune_operator.experiment import aggregate, child_documents, report_rayjob, report_uri
from vlmtune_operator.figures import figures
from vlmtune_operator.objects import InvalidJob, job_from_body, owner_reference, status_of, with_owner
from vlmtune_operator.rayjob import (JOB_LABEL, KIND_LABEL, SPEC_HASH_ANNOTATION, BuildError, build_rayjob,
                                     rayjob_name, spec_hash)
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.status import (TERMINAL, Verdict, admission_of, compose, observe, rayjob_verdict,
                                     status_patch, vanished_verdict)
from vlmtune_operator.store import StoreReader, StoreUnavailable, read_run

SPEC_OUT_OF_DATE = "SpecOutOfDate"
_STARTED = {"Initializing", "Waiting", "Running", "Complete", "Failed", "Retrying", "Suspending", "Suspended"}
"""RayJob deployment states after the job was admitted: the run may have written files."""
log = logging.getLogger(__name__)


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
        _fail(body, patch, previous, Verdict(Phase.Failed, err.reason, str(err), "done"), now)
    created = client.create_rayjob(namespace, with_owner(rayjob, owner_reference(body)))
    _adopt(created, job, body, patch, previous, now)


def refresh_status(body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig,
                   now: datetime | None = None, store: StoreReader | None = None) -> None:
    """Timer body: map the RayJob's and the Kueue Workload's state, and the run's files in `store` (progress,
    metrics, eval headline; skipped without a store), onto the job's status."""
    previous = dict(body.get("status") or {})
    if previous.get("phase") in TERMINAL or not previous.get("rayJobName"):
        return  # reconcile owns the status until a RayJob exists
    namespace = body["metadata"]["namespace"]
    rayjob = client.get_rayjob(namespace, previous["rayJobName"])
    uid = ((rayjob or {}).get("metadata") or {}).get("uid")
    workload = client.find_workload(namespace, uid) if uid else None
    new = observe(kind=body["kind"], output_uri=_output_uri(body), generation=body["metadata"].get("generation"),
                  previous=previous, rayjob=rayjob, workload=workload,
                  readiness_deadline_seconds=runtime.readiness_deadline_seconds, now=now or datetime.now(timezone.utc),
                  figures=_run_figures(store, body, rayjob))
    if new is not None:
        _patch_status(patch, previous, new)


def _run_figures(store: StoreReader | None, body: Mapping, rayjob: Mapping | None) -> dict | None:
    """Progress, metrics and results from the run's output, or None (keep the previous) when unreadable."""
    deployment = ((rayjob or {}).get("status") or {}).get("jobDeploymentStatus")
    output_uri = _output_uri(body)
    if store is None or output_uri is None or deployment not in _STARTED:
        return None
    try:
        files, whole = read_run(store, body["kind"], output_uri)
    except StoreUnavailable as err:  # the RayJob's state still counts; the figures wait for the next tick
        log.warning("%s/%s: %s", body["kind"], body["metadata"]["name"], err)
        return None
    planned = ((body.get("spec") or {}).get("training") or {}).get("maxSteps")
    return figures(body["kind"], files, planned, whole).fields()


def reconcile_experiment(body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig,
                         now: datetime | None = None) -> None:
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
    experiment = _job_or_fail(body, patch, previous, now)
    namespace = body["metadata"]["namespace"]
    expansion = expand(experiment)
    statuses, drifted = {}, False
    for document in child_documents(expansion, namespace):
        child = _ensure_child(document, body, patch, client, previous, now)
        statuses[document["metadata"]["name"]] = status_of(child) or {}
        drifted |= _annotation(child, SPEC_HASH_ANNOTATION) != _annotation(document, SPEC_HASH_ANNOTATION)
    summary = aggregate(expansion, statuses)
    verdict, fields = summary.verdict, summary.fields()
    if summary.all_succeeded:
        verdict, report = _report_step(experiment, body, patch, client, runtime, previous, now)
        fields |= report
    status = _compose(body, previous, verdict, now, **fields)
    status = dict(status, conditions=_spec_condition(status.get("conditions") or [], drifted, body, now,
                                                     EXPERIMENT_DRIFT))
    _patch_status(patch, previous, status)


EXPERIMENT_DRIFT = ("the spec changed after the child jobs were created; they keep the old spec. "
                    "Delete and re-apply the experiment to run the new one")


def _ensure_child(document: dict, body: Mapping, patch: kopf.Patch, client, previous: dict,
                  now: datetime) -> dict:
    """The live child job of `document`, created (owned by the experiment) when it does not exist yet."""
    namespace, name, kind = body["metadata"]["namespace"], document["metadata"]["name"], document["kind"]
    existing = client.get_job(namespace, name, kind)
    if existing is None:
        if any(row.get("name") == name and row.get("phase") for row in previous.get("children") or []):
            message = f"child {kind} {name} was deleted before the experiment finished; re-apply the experiment"
            _fail(body, patch, previous, Verdict(Phase.Failed, "ChildVanished", message, "done"), now)
        existing = client.create_job(namespace, with_owner(document, owner_reference(body)))
    meta = existing.get("metadata") or {}
    owners = [ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    if body["metadata"].get("uid") in owners:
        return existing
    if meta.get("deletionTimestamp"):
        raise kopf.TemporaryError(f"{kind} {name} of an earlier experiment is being deleted", delay=10)
    owner = (meta.get("labels") or {}).get(EXPERIMENT_LABEL)
    message = f"{kind} {name} exists and belongs to {f'experiment {owner}' if owner else 'no experiment'}"
    _fail(body, patch, previous, Verdict(Phase.Failed, "NameConflict", message, "done"), now)


def _report_step(experiment: Experiment, body: Mapping, patch: kopf.Patch, client, runtime: RuntimeConfig,
                 previous: dict, now: datetime) -> tuple[Verdict, dict]:
    """The report RayJob's state as the experiment's verdict (it is created here once all children succeeded)."""
    namespace = body["metadata"]["namespace"]
    rayjob = client.get_rayjob(namespace, rayjob_name(experiment.kind, experiment.name))
    if rayjob is None:
        if previous.get("rayJobName"):
            _fail(body, patch, previous, vanished_verdict(previous["rayJobName"]), now)
        try:
            built = report_rayjob(experiment, runtime, namespace)
        except BuildError as err:
            _fail(body, patch, previous, Verdict(Phase.Failed, "InvalidForCluster", str(err), "done"), now)
        rayjob = client.create_rayjob(namespace, with_owner(built, owner_reference(body)))
    meta = rayjob.get("metadata") or {}
    _refuse_foreign(rayjob, experiment, body, patch, previous, now)
    fields = {"rayJobName": meta["name"], "queue": (meta.get("labels") or {}).get(QUEUE_LABEL),
              "dashboardURL": (rayjob.get("status") or {}).get("dashboardURL") or None}
    workload = client.find_workload(namespace, meta["uid"]) if meta.get("uid") else None
    step = rayjob_verdict(rayjob, admission_of(workload), previous.get("phase"), now,
                          runtime.readiness_deadline_seconds)
    if step.phase is Phase.Succeeded:
        return Verdict(Phase.Succeeded, "ReportWritten", f"report written to {report_uri(experiment)}",
                       "done"), fields | {"report": report_uri(experiment)}
    if step.phase is Phase.Failed:
        return Verdict(Phase.Failed, f"Report{step.reason}", step.message or "the report RayJob failed",
                       "done"), fields
    message = f"all jobs succeeded; report RayJob {meta['name']}: {step.reason}"
    return Verdict(Phase.Running, "Reporting", message, "reporting"), fields


def _refuse_foreign(rayjob: Mapping, job, body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> None:
    meta = rayjob.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(JOB_LABEL) != job.name or labels.get(KIND_LABEL) != job.kind:
        message = f"RayJob {meta.get('name')} exists and belongs to {labels.get(KIND_LABEL)}/{labels.get(JOB_LABEL)}"
        _fail(body, patch, previous, Verdict(Phase.Failed, "NameConflict", message, "done"), now)


def _annotation(obj: Mapping, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


def _adopt(rayjob: Mapping, job: Job, body: Mapping, patch: kopf.Patch, previous: dict, now: datetime) -> None:
    """Record an existing RayJob as the job's child, refusing one that belongs to another job."""
    meta = rayjob.get("metadata") or {}
    labels = meta.get("labels") or {}
    _refuse_foreign(rayjob, job, body, patch, previous, now)
    status = previous
    if not previous.get("rayJobName"):
        queue = labels.get(QUEUE_LABEL)
        message = f"submitted RayJob {meta['name']} to Kueue queue {queue}" if queue else "RayJob created"
        verdict = Verdict(Phase.Queued, "RayJobCreated", message, "queued")
        status = _compose(body, previous, verdict, now, rayJobName=meta["name"], queue=queue)
    drifted = (meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION) != spec_hash(job.to_doc())
    status = dict(status, conditions=_spec_condition(status.get("conditions") or [], drifted, body, now))
    _patch_status(patch, previous, status)


JOB_DRIFT = ("the spec changed after the RayJob was created; the running RayJob keeps the old spec. "
             "Delete and re-apply the job to run the new one")


def _spec_condition(conditions: list, drifted: bool, body: Mapping, now: datetime, explain: str = JOB_DRIFT) -> list:
    """SpecOutOfDate: a running training job is never restarted behind its owner's back."""
    before = next((c for c in conditions if c["type"] == SPEC_OUT_OF_DATE), None)
    if before is None and not drifted:
        return conditions
    state = "True" if drifted else "False"
    since = before["lastTransitionTime"] if before and before["status"] == state else now
    message = explain if drifted else ""
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
    # An experiment's outputs are its children's; its own artifact is the report.
    output_uri = None if body.get("kind") == "Experiment" else _output_uri(body)
    return compose(previous, verdict, body["metadata"].get("generation"), now, kind=body.get("kind"),
                   output_uri=output_uri, **fields)


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
    store = StoreReader()

    def client():
        if not clients:  # built lazily: in-cluster credentials exist only once the operator runs
            clients.append(client_factory())
        return clients[0]

    def on_change(body, patch, **_):
        if body.get("kind") == "Experiment":
            reconcile_experiment(body, patch, client(), runtime)
        else:
            reconcile(body, patch, client(), runtime)

    def on_timer(body, patch, **_):
        if body.get("kind") == "Experiment":
            # kopf runs timers beside change handlers: until the creating reconcile has recorded the children,
            # a timer run would race it to create them.
            if (body.get("status") or {}).get("children"):
                reconcile_experiment(body, patch, client(), runtime)
        else:
            refresh_status(body, patch, client(), runtime, store=store)

    for kind in kinds:
        plural = plural_of(kind)
        for cause, event in (("create", kopf.on.create), ("resume", kopf.on.resume), ("update", kopf.on.update)):
            event(API_GROUP, VERSION, plural, registry=registry, id=f"reconcile-{cause}")(on_change)
        kopf.timer(API_GROUP, VERSION, plural, registry=registry, id="status",
                   interval=runtime.status_interval_seconds)(on_timer)
