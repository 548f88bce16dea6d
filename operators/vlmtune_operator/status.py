"""Pure mapping from what KubeRay and Kueue report to our job status.

It follows the state machines of KubeRay v1.7.0 (`ray-operator/controllers/ray/rayjob_controller.go`:
jobDeploymentStatus New -> Initializing -> Running -> Complete/Failed, and Suspending -> Suspended, Retrying -> New)
and Kueue v0.19.2 (`pkg/controller/jobframework/reconciler.go`, `pkg/controller/core/workload_controller.go`:
the Workload's QuotaReserved/Admitted/Evicted conditions and `spec.active`); tests/unit/operator/test_lifecycle.py
replays their sequences against the handlers. Three rules hold throughout:

- `spec.suspend` says "waiting" before jobDeploymentStatus says anything: KubeRay walks even a RayJob Kueue never
  admitted through New -> Initializing -> Suspending -> Suspended, so Initializing alone proves nothing.
- Every wait has a deadline: queued (queueDeadlineSeconds from `waitingSince`), starting (readinessDeadlineSeconds
  from admission: a dead submitter keeps a RayJob Initializing forever, kuberay#4945; Kueue may admit and never
  unsuspend, kueue#13413), running (activeDeadlineSeconds of admitted time, summed over admissions: KubeRay's own
  deadline restarts at every Initializing).
- A Failed verdict is final here; the handler deletes a RayJob that could still run before it writes Failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vlmtune.spec import QUEUE_LABEL, TERMINAL_PHASES, Condition, Phase, status_model
from vlmtune_operator.run import UNREAD, Run, run_artifacts

TERMINAL = {phase.value for phase in TERMINAL_PHASES}
KUBERAY_FINAL = {"Complete", "Failed", "ValidationFailed"}
"""jobDeploymentStatus values KubeRay never leaves (a Failed with retries left is written as Retrying instead)."""
FIGURE_FIELDS = ("progress", "metrics", "results")
KEPT_FIELDS = (
    *FIGURE_FIELDS,
    "queue",
    "rayJobName",
    "dashboardURL",
    "startTime",
    "activeSeconds",
    "upstreams",
    "artifacts",
)
"""Status fields a new verdict does not reset: they change only when something new is observed."""

QUEUED, STARTING, RUNNING, OWNER, UPSTREAM, DONE = "queued", "starting", "running", "owner", "upstream", "done"
STAGE_WAIT = {
    "queued": QUEUED,
    "suspended": QUEUED,
    "admitted": STARTING,
    "creating": STARTING,
    "initializing": STARTING,
    "waiting": STARTING,
    "retrying": STARTING,
    "submitting": STARTING,
    "unknown": STARTING,
    "training": RUNNING,
    "finishing": RUNNING,
    "paused": OWNER,
    "suspending": OWNER,
    "waiting-upstream": UPSTREAM,
    "done": DONE,
}
"""What a job in each stage waits for; each kind of wait has its own deadline (none for OWNER and UPSTREAM)."""
SUSPENDED_BY_USER = "SuspendedByUser"
KUEUE_DEACTIVATIONS = {
    "MaximumExecutionTimeExceeded": (
        "DeadlineExceeded",
        "Kueue's maximum execution time ran out (admitted time summed over admissions)",
    ),
    "RequeuingLimitExceeded": (
        "RequeuingLimitExceeded",
        "Kueue stopped requeueing the Workload after too many "
        "readiness timeouts (waitForPodsReady); check the pods' events",
    ),
}
"""Workload deactivations Kueue makes itself (reason `DeactivatedDueTo<cause>`): the job cannot come back."""
MISCONFIGURED = {"Misconfigured", "Inadmissible"}


@dataclass(frozen=True)
class Verdict:
    """Phase of a job and why, before it is merged into the status document."""

    phase: Phase
    reason: str
    message: str = ""
    stage: str | None = None
    deadline: datetime | None = None

    @property
    def wait(self) -> str | None:
        return STAGE_WAIT.get(self.stage or "")


@dataclass(frozen=True)
class Deadlines:
    """Limits of the three kinds of wait, in seconds (None: that wait is unlimited)."""

    readiness_seconds: int
    queue_seconds: int | None = None
    active_seconds: int | None = None


@dataclass(frozen=True)
class Admission:
    """What the Kueue Workload of a RayJob says."""

    exists: bool = False
    admitted: bool = False
    evicted_reason: str | None = None
    deactivated: bool = False
    deactivation_cause: str | None = None
    pending_reason: str | None = None
    message: str = ""
    since: datetime | None = None


def admission_of(workload: Mapping | None) -> Admission:
    """Read admission, eviction and deactivation from a Kueue Workload (None: not created yet, or not managed)."""
    if workload is None:
        return Admission()
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    admitted = conditions.get("Admitted", {}).get("status") == "True"
    evicted = conditions.get("Evicted", {}) if conditions.get("Evicted", {}).get("status") == "True" else {}
    pending = conditions.get("QuotaReserved", {})
    target = conditions.get("DeactivationTarget", {})
    reason = evicted.get("reason") or ""
    cause = reason.partition("DueTo")[2] or (target.get("reason") if target.get("status") == "True" else None)
    return Admission(
        exists=True,
        admitted=admitted,
        evicted_reason=(reason or "Evicted") if evicted else None,
        deactivated=(workload.get("spec") or {}).get("active") is False,
        deactivation_cause=cause or None,
        pending_reason=pending.get("reason") if pending.get("status") == "False" else None,
        message=evicted.get("message") or (pending.get("message") if pending.get("status") == "False" else "") or "",
        since=parse_time(conditions.get("Admitted", {}).get("lastTransitionTime")) if admitted else None,
    )


def classify(rayjob: Mapping, admission: Admission, previous_phase: str | None) -> Verdict:
    """Phase, reason and stage of a RayJob's jobDeploymentStatus and jobStatus, with Kueue's admission; no deadlines."""
    status = rayjob.get("status") or {}
    deployment, job = status.get("jobDeploymentStatus") or "", status.get("jobStatus") or ""
    message = status.get("message") or ""
    if deployment == "Complete":
        if job == "SUCCEEDED":
            return Verdict(Phase.Succeeded, "Succeeded", message, "done")
        reason = {"FAILED": "JobFailed", "STOPPED": "JobStopped"}.get(job, "SubmissionFailed")
        return Verdict(Phase.Failed, reason, message or f"Ray job ended {job or 'without starting'}", "done")
    if deployment in ("Failed", "ValidationFailed"):
        reason = status.get("reason") or ("ValidationFailed" if deployment == "ValidationFailed" else "RayJobFailed")
        return Verdict(Phase.Failed, reason, message, "done")
    if admission.deactivated and admission.deactivation_cause in KUEUE_DEACTIVATIONS:
        return _deactivated(admission)
    # KubeRay finishes a suspension it began even when the flag is cleared meanwhile (the suspend is atomic).
    if (rayjob.get("spec") or {}).get("suspend") or deployment == "Suspending":
        return _deactivated(admission) if admission.deactivated else _suspended(admission, previous_phase)
    if deployment == "Suspended":  # Kueue unsuspended it; KubeRay moves it to New next
        return Verdict(Phase.Queued, "Admitted", "admitted by Kueue; starting", "admitted")
    if deployment in ("", "New"):
        if admission.exists and not admission.admitted:  # Kueue suspends a job running without admission
            return _queued(admission)
        return Verdict(Phase.Pending, "RayJobCreated", "waiting for KubeRay to start the job", "creating")
    if deployment in ("Initializing", "Waiting", "Retrying") or (deployment == "Running" and job in ("", "PENDING")):
        stage = "submitting" if deployment == "Running" else deployment.lower()
        return Verdict(Phase.Running, "ClusterStarting", message, stage)
    if deployment == "Running":
        return Verdict(Phase.Running, "JobRunning", message, "training" if job == "RUNNING" else "finishing")
    return Verdict(
        Phase.Pending, "UnknownDeploymentStatus", f"RayJob reports jobDeploymentStatus {deployment!r}", "unknown"
    )


def _deactivated(admission: Admission) -> Verdict:
    if admission.deactivation_cause in KUEUE_DEACTIVATIONS:
        reason, why = KUEUE_DEACTIVATIONS[admission.deactivation_cause]
        return Verdict(Phase.Failed, reason, f"{why}: {admission.message}".rstrip(": "), "done")
    return Verdict(
        Phase.Suspended,
        "WorkloadDeactivated",
        "the Kueue Workload was deactivated (spec.active: false); it runs again once reactivated",
        "queued",
    )


def _suspended(admission: Admission, previous_phase: str | None) -> Verdict:
    if admission.evicted_reason:
        return Verdict(Phase.Suspended, admission.evicted_reason, admission.message, "suspended")
    if admission.admitted:
        return Verdict(Phase.Queued, "Admitted", "admitted by Kueue; starting", "admitted")
    if previous_phase in (Phase.Running.value, Phase.Suspended.value):
        return Verdict(Phase.Suspended, "Suspended", admission.message, "suspended")
    return _queued(admission)


def _queued(admission: Admission) -> Verdict:
    if not admission.exists:
        return Verdict(
            Phase.Queued,
            "WaitingForWorkload",
            "Kueue has not created a Workload for the RayJob yet "
            "(is Kueue running, and does it manage this namespace and queue?)",
            "queued",
        )
    if admission.pending_reason in MISCONFIGURED:
        return Verdict(Phase.Queued, "QueueMisconfigured", admission.message, "queued")
    return Verdict(Phase.Queued, "WaitingForQuota", admission.message, "queued")


def rayjob_verdict(
    rayjob: Mapping,
    admission: Admission,
    previous_phase: str | None,
    now: datetime,
    readiness_deadline_seconds: int,
    waiting_since: datetime | None = None,
) -> Verdict:
    """`classify`, with the readiness deadline of a job that was admitted but does not run yet.

    The deadline counts from the latest evidence of a start (KubeRay's startTime, Kueue's admission), else from
    `waiting_since`, else from the RayJob's creation.
    """
    verdict = classify(rayjob, admission, previous_phase)
    if verdict.wait != STARTING:
        return verdict
    started = [t for t in (parse_time((rayjob.get("status") or {}).get("startTime")), admission.since) if t]
    start = (
        max(started)
        if started
        else waiting_since or parse_time((rayjob.get("metadata") or {}).get("creationTimestamp"))
    )
    if start is None:
        return verdict
    deadline = start + timedelta(seconds=readiness_deadline_seconds)
    if now > deadline:
        return Verdict(
            Phase.Failed,
            "ReadinessDeadlineExceeded",
            f"the job did not start running within {readiness_deadline_seconds}s of admission (stuck in "
            f"{verdict.stage}: {verdict.reason}); check the Ray head and submitter pods' events",
            "done",
        )
    return replace(verdict, deadline=deadline)


def vanished_verdict(ray_job_name: str) -> Verdict:
    return Verdict(
        Phase.Failed,
        "RayJobVanished",
        f"RayJob {ray_job_name} was deleted before the job finished; re-apply the job to run it again",
        "done",
    )


@dataclass(frozen=True)
class Clock:
    """Admitted time so far: seconds of closed periods, and the start of the open one."""

    seconds: int = 0
    since: datetime | None = None

    def used(self, now: datetime) -> float:
        return self.seconds + ((now - self.since).total_seconds() if self.since else 0)


def advance(previous: Mapping, active: bool, now: datetime) -> Clock:
    """The clock after an observation: a period opens when the job runs admitted, and closes when it stops."""
    seconds, since = int(previous.get("activeSeconds") or 0), parse_time(previous.get("activeSince"))
    if active:
        return Clock(seconds, since or now)
    if since:
        seconds += max(0, int((now - since).total_seconds()))
    return Clock(seconds)


def waiting_since(previous: Mapping, verdict: Verdict, now: datetime) -> datetime | None:
    """When the current wait began: kept while the job waits for the same thing, reset when that changes."""
    if verdict.wait in (None, DONE, RUNNING):
        return None
    before = STAGE_WAIT.get(previous.get("stage") or "")
    return parse_time(previous.get("waitingSince")) if before == verdict.wait and previous.get("waitingSince") else now


def enforce(verdict: Verdict, clock: Clock, since: datetime | None, deadlines: Deadlines, now: datetime) -> Verdict:
    """The verdict once the queue and active deadlines are applied (the readiness one is in `rayjob_verdict`)."""
    if verdict.phase in TERMINAL_PHASES:
        return verdict
    budget = deadlines.active_seconds
    if budget is not None and clock.used(now) > budget:
        return Verdict(
            Phase.Failed,
            "DeadlineExceeded",
            f"ran {int(clock.used(now))}s admitted, over all admissions; the job's activeDeadlineSeconds is {budget}",
            "done",
        )
    if verdict.wait == QUEUED and deadlines.queue_seconds is not None and since is not None:
        deadline = since + timedelta(seconds=deadlines.queue_seconds)
        if now > deadline:
            return Verdict(
                Phase.Failed,
                "QueueDeadlineExceeded",
                f"waited over {deadlines.queue_seconds}s (the chart's queueDeadlineSeconds) without "
                f"running: {verdict.reason}{': ' + verdict.message if verdict.message else ''}",
                "done",
            )
        return replace(verdict, deadline=deadline)
    if verdict.wait == RUNNING and budget is not None and clock.since is not None:
        return replace(verdict, deadline=clock.since + timedelta(seconds=budget - clock.seconds))
    return verdict


def observe(
    *,
    kind: str,
    generation: int | None,
    previous: Mapping,
    rayjob: Mapping | None,
    workload: Mapping | None,
    deadlines: Deadlines,
    now: datetime,
    figures: Mapping | None = None,
    run: Run | None = None,
    record=UNREAD,
) -> dict | None:
    """The new status document of a job whose RayJob was created, or None when there is nothing to change.

    Args:
        figures: progress, metrics and results of this job's run (None: unread, keep the previous; a mapping
            replaces all three, so figures missing from it are cleared).
        run: the run the RayJob carries (None: keep the previous artifacts).
        record: the run folder's job.json (None: absent; UNREAD: the store could not be asked).
    """
    phase = previous.get("phase")
    if phase in TERMINAL or not previous.get("rayJobName"):
        return None
    if rayjob is None:
        return compose(previous, vanished_verdict(previous["rayJobName"]), generation, now, kind=kind)
    admission = admission_of(workload)
    since = waiting_since(previous, classify(rayjob, admission, phase), now)
    verdict = rayjob_verdict(rayjob, admission, phase, now, deadlines.readiness_seconds, since)
    clock = advance(previous, verdict.phase is Phase.Running, now)
    verdict = enforce(verdict, clock, since, deadlines, now)
    if verdict.phase in TERMINAL_PHASES:
        clock = advance(previous, False, now)
    status = rayjob.get("status") or {}
    base = previous if figures is None else {k: v for k, v in previous.items() if k not in FIGURE_FIELDS}
    artifacts = None
    if run is not None:
        artifacts, note = run_artifacts(run, record, succeeded=verdict.phase is Phase.Succeeded)
        verdict = replace(verdict, message=note) if note else verdict
    return compose(
        base,
        verdict,
        generation,
        now,
        kind=kind,
        admitted=admission.admitted if admission.exists else None,
        rayJobName=rayjob["metadata"]["name"],
        dashboardURL=status.get("dashboardURL") or None,
        queue=((rayjob.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL),
        startTime=status.get("startTime") or previous.get("startTime"),
        completionTime=status.get("endTime") if verdict.phase in TERMINAL_PHASES else None,
        waitingSince=since if verdict.phase not in TERMINAL_PHASES else None,
        activeSeconds=clock.seconds,
        activeSince=clock.since,
        artifacts=artifacts,
        **dict(figures or {}),
    )


def compose(
    previous: Mapping,
    verdict: Verdict,
    generation: int | None,
    now: datetime,
    *,
    kind: str | None = None,
    admitted: bool | None = None,
    **fields,
) -> dict:
    """Merge a verdict into the previous status: conditions keep their transition times, progress is kept."""
    keep = {key: previous[key] for key in KEPT_FIELDS if previous.get(key) is not None}
    if verdict.phase in TERMINAL_PHASES:
        keep.pop("dashboardURL", None)  # KubeRay deletes the cluster after the job; the link would be dead
        fields["completionTime"] = fields.get("completionTime") or now
    document = (
        keep
        | {key: value for key, value in fields.items() if value is not None}
        | {
            "observedGeneration": generation,
            "phase": verdict.phase.value,
            "reason": verdict.reason,
            "message": verdict.message or None,
            "stage": verdict.stage,
            "deadline": verdict.deadline,
            "conditions": conditions(previous.get("conditions") or [], verdict, admitted, generation, now),
        }
    )
    document = {key: value for key, value in document.items() if value is not None}
    return status_model(kind).model_validate(document).to_doc()  # what we write fits our own CRD schema


def conditions(
    previous: list, verdict: Verdict, admitted: bool | None, generation: int | None, now: datetime
) -> list[dict]:
    """The four managed conditions for `verdict`, after any other conditions already present."""
    old = {c["type"]: c for c in previous}
    started = verdict.phase in (Phase.Running, Phase.Succeeded)
    if admitted or started:
        admitted_status = "True"
    elif admitted is None:  # no Workload to ask (not created yet, or deleted with the finished job)
        admitted_status = old.get("Admitted", {}).get("status", "Unknown")
    else:
        admitted_status = "False"
    wanted = {
        "Admitted": (admitted_status, "Admitted" if admitted_status == "True" else verdict.reason),
        "Running": (_flag(verdict.phase is Phase.Running), verdict.reason),
        "Succeeded": (_flag(verdict.phase is Phase.Succeeded), verdict.reason),
        "Failed": (_flag(verdict.phase is Phase.Failed), verdict.reason),
    }
    result = [dict(c) for c in previous if c["type"] not in wanted]
    for kind, (state, reason) in wanted.items():
        before = old.get(kind, {})
        since = before.get("lastTransitionTime") if before.get("status") == state else None
        result.append(
            Condition(
                type=kind,
                status=state,
                reason=reason,
                message=verdict.message,
                last_transition_time=since or now,
                observed_generation=generation,
            ).to_doc()
        )
    return result


def can_still_run(rayjob: Mapping | None) -> bool:
    """A RayJob that KubeRay (or Kueue, by unsuspending it) could still run: one a Failed job must not keep."""
    if rayjob is None or (rayjob.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return ((rayjob.get("status") or {}).get("jobDeploymentStatus") or "") not in KUBERAY_FINAL


def status_patch(previous: Mapping, new: Mapping) -> dict:
    """A JSON merge patch from `previous` to `new`: changed keys, and null for keys that disappeared."""
    removed = {key: None for key in previous if key not in new}
    return removed | {key: value for key, value in new.items() if previous.get(key) != value}


def parse_time(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _flag(value: bool) -> str:
    return "True" if value else "False"
