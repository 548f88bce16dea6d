"""Pure mapping from what KubeRay and Kueue report to our job status.

KubeRay alone is not trusted to be final: a RayJob whose submitter dies can sit in Initializing forever
(kuberay#4945), so an admitted job that does not start running within the readiness deadline is Failed here,
and a RayJob that disappears fails its job instead of leaving it Running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vlmtune.spec.metadata import QUEUE_LABEL
from vlmtune.spec.status import TERMINAL_PHASES, Condition, Phase, status_model

from vlmtune_operator.chaining import artifact_uris

TERMINAL = {phase.value for phase in TERMINAL_PHASES}
MANAGED_CONDITIONS = ("Admitted", "Running", "Succeeded", "Failed")
_NOT_STARTED_DEPLOYMENTS = {"Initializing", "Waiting", "Retrying"}
KEPT_FIELDS = ("progress", "metrics", "results", "queue", "rayJobName", "dashboardURL", "startTime")
"""Status fields a new verdict does not reset: they change only when something new is observed."""


@dataclass(frozen=True)
class Verdict:
    """Phase of a job and why, before it is merged into the status document."""

    phase: Phase
    reason: str
    message: str = ""
    stage: str | None = None


@dataclass(frozen=True)
class Admission:
    """What the Kueue Workload of a RayJob says."""

    admitted: bool = False
    evicted_reason: str | None = None
    deactivated: bool = False
    message: str = ""
    since: datetime | None = None


def admission_of(workload: Mapping | None) -> Admission:
    """Read admission, eviction and deactivation from a Kueue Workload (None: not created yet)."""
    if workload is None:
        return Admission(message="waiting for Kueue to create the Workload")
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    admitted = conditions.get("Admitted", {}).get("status") == "True"
    evicted = conditions.get("Evicted", {})
    pending = conditions.get("QuotaReserved", {})
    message = (evicted.get("message") if evicted.get("status") == "True" else None) or pending.get("message") or ""
    return Admission(
        admitted=admitted,
        evicted_reason=(evicted.get("reason") or "Evicted") if evicted.get("status") == "True" else None,
        deactivated=(workload.get("spec") or {}).get("active") is False,
        message=message,
        since=parse_time(conditions.get("Admitted", {}).get("lastTransitionTime")) if admitted else None,
    )


def rayjob_verdict(rayjob: Mapping, admission: Admission, previous_phase: str | None, now: datetime,
                   readiness_deadline_seconds: int) -> Verdict:
    """Map a RayJob's jobDeploymentStatus and jobStatus (plus Kueue admission) to a phase."""
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
    suspended = bool((rayjob.get("spec") or {}).get("suspend"))
    if deployment in ("Suspended", "Suspending") or (suspended and deployment in ("", "New")):
        return _suspended_verdict(admission, previous_phase)
    if deployment in ("", "New", "Scheduling", "Scheduled"):
        return Verdict(Phase.Pending, "RayJobCreated", "waiting for KubeRay to start the job", "creating")
    if deployment in _NOT_STARTED_DEPLOYMENTS or (deployment == "Running" and job in ("", "PENDING")):
        stage = "submitting" if deployment == "Running" else deployment.lower()
        return _deadline_verdict(status, admission, stage, now, readiness_deadline_seconds)
    if deployment == "Running":
        stage = "training" if job == "RUNNING" else "finishing"
        return Verdict(Phase.Running, "JobRunning", message, stage)
    return Verdict(Phase.Pending, "UnknownDeploymentStatus", f"RayJob reports jobDeploymentStatus {deployment!r}")


def _suspended_verdict(admission: Admission, previous_phase: str | None) -> Verdict:
    if admission.deactivated:
        return Verdict(Phase.Failed, "WorkloadDeactivated", admission.message or "Kueue deactivated the Workload",
                       "done")
    if admission.evicted_reason or previous_phase in (Phase.Running.value, Phase.Suspended.value):
        return Verdict(Phase.Suspended, admission.evicted_reason or "Suspended", admission.message, "suspended")
    if admission.admitted:
        return Verdict(Phase.Queued, "Admitted", "admitted by Kueue; starting", "admitted")
    return Verdict(Phase.Queued, "WaitingForQuota", admission.message, "queued")


def _deadline_verdict(status: Mapping, admission: Admission, stage: str, now: datetime, deadline: int) -> Verdict:
    starts = [t for t in (parse_time(status.get("startTime")), admission.since) if t is not None]
    if starts and now - max(starts) > timedelta(seconds=deadline):
        return Verdict(Phase.Failed, "ReadinessDeadlineExceeded",
                       f"the job did not start running within {deadline}s of admission (stuck in {stage}); "
                       "check the Ray head and submitter pods' events", "done")
    return Verdict(Phase.Running, "ClusterStarting", status.get("message") or "", stage)


def vanished_verdict(ray_job_name: str) -> Verdict:
    return Verdict(Phase.Failed, "RayJobVanished",
                   f"RayJob {ray_job_name} was deleted before the job finished; re-apply the job to run it again",
                   "done")


def observe(*, kind: str, output_uri: str, generation: int | None, previous: Mapping, rayjob: Mapping | None,
            workload: Mapping | None, readiness_deadline_seconds: int, now: datetime,
            figures: Mapping | None = None) -> dict | None:
    """The new status document of a job whose RayJob was created, or None when there is nothing to change.

    Args:
        figures: progress, metrics and results read from the run's files (None: unread, keep the previous).
    """
    phase = previous.get("phase")
    if phase in TERMINAL or not previous.get("rayJobName"):
        return None
    if rayjob is None:
        return compose(previous, vanished_verdict(previous["rayJobName"]), generation, now, kind=kind,
                       output_uri=output_uri)
    admission = admission_of(workload)
    verdict = rayjob_verdict(rayjob, admission, phase, now, readiness_deadline_seconds)
    status = rayjob.get("status") or {}
    return compose(
        previous, verdict, generation, now, kind=kind, output_uri=output_uri,
        admitted=admission.admitted if workload is not None else None,
        rayJobName=rayjob["metadata"]["name"], dashboardURL=status.get("dashboardURL") or None,
        queue=((rayjob.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL),
        startTime=status.get("startTime") or previous.get("startTime"),
        completionTime=status.get("endTime") if verdict.phase in TERMINAL_PHASES else None,
        **dict(figures or {}),
    )


def compose(previous: Mapping, verdict: Verdict, generation: int | None, now: datetime, *, kind: str | None = None,
            output_uri: str | None = None, admitted: bool | None = None, **fields) -> dict:
    """Merge a verdict into the previous status: conditions keep their transition times, progress is kept."""
    keep = {key: previous[key] for key in KEPT_FIELDS if previous.get(key) is not None}
    if verdict.phase in TERMINAL_PHASES:
        keep.pop("dashboardURL", None)  # KubeRay deletes the cluster after the job; the link would be dead
        fields["completionTime"] = fields.get("completionTime") or now
    document = keep | {key: value for key, value in fields.items() if value is not None} | {
        "observedGeneration": generation, "phase": verdict.phase.value, "reason": verdict.reason,
        "message": verdict.message or None, "stage": verdict.stage,
        "conditions": conditions(previous.get("conditions") or [], verdict, admitted, generation, now),
    }
    if kind and output_uri and fields.get("rayJobName", previous.get("rayJobName")):
        document["artifacts"] = artifact_uris(kind, output_uri, succeeded=verdict.phase is Phase.Succeeded)
    return status_model(kind).model_validate(document).to_doc()  # what we write fits our own CRD schema


def conditions(previous: list, verdict: Verdict, admitted: bool | None, generation: int | None,
               now: datetime) -> list[dict]:
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
        result.append(Condition(type=kind, status=state, reason=reason, message=verdict.message,
                                last_transition_time=since or now, observed_generation=generation).to_doc())
    return result


def status_patch(previous: Mapping, new: Mapping) -> dict:
    """A JSON merge patch from `previous` to `new`: changed keys, and null for keys that disappeared."""
    removed = {key: None for key in previous if key not in new}
    return removed | {key: value for key, value in new.items() if previous.get(key) != value}


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _flag(value: bool) -> str:
    return "True" if value else "False"
