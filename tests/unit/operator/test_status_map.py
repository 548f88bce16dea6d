"""Status mapping over the real KubeRay jobDeploymentStatus x jobStatus values and Kueue Workload states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vlmtune.spec.status import Phase
from vlmtune_operator.run import UNREAD, Run
from vlmtune_operator.status import (
    Admission,
    Deadlines,
    Verdict,
    admission_of,
    compose,
    observe,
    rayjob_verdict,
    status_patch,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DEADLINE = 1800
RECENT = (NOW - timedelta(seconds=60)).isoformat()
LONG_AGO = (NOW - timedelta(seconds=DEADLINE + 1)).isoformat()


def rayjob(deployment: str = "", job: str = "", suspend: bool = False, **status) -> dict:
    return {
        "metadata": {"name": "tj-x", "uid": "u1", "labels": {"kueue.x-k8s.io/queue-name": "tuning"}},
        "spec": {"suspend": suspend},
        "status": {"jobDeploymentStatus": deployment, "jobStatus": job, **status},
    }


def workload(*conditions: tuple[str, str, str], active: bool = True, message: str = "") -> dict:
    return {
        "spec": {"active": active},
        "status": {
            "conditions": [
                {"type": kind, "status": state, "reason": reason, "message": message, "lastTransitionTime": RECENT}
                for kind, state, reason in conditions
            ]
        },
    }


ADMITTED = workload(("QuotaReserved", "True", "QuotaReserved"), ("Admitted", "True", "Admitted"))
PENDING = workload(("QuotaReserved", "False", "Pending"), message="couldn't assign flavors to pod set workers")

# (jobDeploymentStatus, jobStatus, spec.suspend, extra status) -> (phase, reason, stage)
TABLE = [
    ("", "", True, {}, Phase.Queued, "WaitingForQuota", "queued"),
    ("New", "", True, {}, Phase.Queued, "WaitingForQuota", "queued"),
    ("Suspended", "", True, {}, Phase.Queued, "WaitingForQuota", "queued"),
    ("", "", False, {}, Phase.Queued, "WaitingForQuota", "queued"),  # Kueue suspends a job it has not admitted
    ("Initializing", "", True, {"startTime": RECENT}, Phase.Queued, "WaitingForQuota", "queued"),  # the suspend walk
    ("Suspending", "", True, {}, Phase.Queued, "WaitingForQuota", "queued"),
    ("Suspending", "", False, {}, Phase.Queued, "WaitingForQuota", "queued"),  # KubeRay finishes a suspension
    ("Initializing", "", False, {"startTime": RECENT}, Phase.Running, "ClusterStarting", "initializing"),
    ("Waiting", "", False, {"startTime": RECENT}, Phase.Running, "ClusterStarting", "waiting"),
    ("Retrying", "", False, {"startTime": RECENT}, Phase.Running, "ClusterStarting", "retrying"),
    ("Running", "", False, {"startTime": RECENT}, Phase.Running, "ClusterStarting", "submitting"),
    ("Running", "PENDING", False, {"startTime": RECENT}, Phase.Running, "ClusterStarting", "submitting"),
    ("Running", "RUNNING", False, {"startTime": LONG_AGO}, Phase.Running, "JobRunning", "training"),
    ("Running", "SUCCEEDED", False, {}, Phase.Running, "JobRunning", "finishing"),
    ("Running", "FAILED", False, {}, Phase.Running, "JobRunning", "finishing"),
    ("Running", "STOPPED", False, {}, Phase.Running, "JobRunning", "finishing"),
    ("Complete", "SUCCEEDED", False, {}, Phase.Succeeded, "Succeeded", "done"),
    ("Complete", "FAILED", False, {}, Phase.Failed, "JobFailed", "done"),
    ("Complete", "STOPPED", False, {}, Phase.Failed, "JobStopped", "done"),
    ("Complete", "", False, {}, Phase.Failed, "SubmissionFailed", "done"),
    ("Failed", "FAILED", False, {"reason": "AppFailed"}, Phase.Failed, "AppFailed", "done"),
    ("Failed", "RUNNING", False, {"reason": "DeadlineExceeded"}, Phase.Failed, "DeadlineExceeded", "done"),
    ("Failed", "", False, {"reason": "SubmissionFailed"}, Phase.Failed, "SubmissionFailed", "done"),
    ("Failed", "", False, {}, Phase.Failed, "RayJobFailed", "done"),
    ("ValidationFailed", "", False, {}, Phase.Failed, "ValidationFailed", "done"),
    ("Exploded", "", False, {}, Phase.Pending, "UnknownDeploymentStatus", "unknown"),
]


@pytest.mark.parametrize(
    "deployment, job, suspend, extra, phase, reason, stage",
    TABLE,
    ids=[f"{row[0] or 'empty'}-{row[1] or 'empty'}-{'suspended' if row[2] else 'active'}" for row in TABLE],
)
def test_rayjob_states_map_to_phases(deployment, job, suspend, extra, phase, reason, stage):
    verdict = rayjob_verdict(rayjob(deployment, job, suspend, **extra), admission_of(PENDING), None, NOW, DEADLINE)
    assert (verdict.phase, verdict.reason, verdict.stage) == (phase, reason, stage)


@pytest.mark.parametrize(
    "deployment, job",
    [("Initializing", ""), ("Waiting", ""), ("Retrying", ""), ("Running", "PENDING"), ("Running", "")],
)
def test_not_running_past_the_readiness_deadline_fails(deployment, job):
    # kuberay#4945: a dead submitter leaves the RayJob Initializing forever; we fail it instead of hanging.
    verdict = rayjob_verdict(rayjob(deployment, job, startTime=LONG_AGO), Admission(admitted=True), None, NOW, DEADLINE)
    assert (verdict.phase, verdict.reason) == (Phase.Failed, "ReadinessDeadlineExceeded")
    assert f"within {DEADLINE}s" in verdict.message


def test_deadline_counts_from_the_latest_admission():
    # A job requeued and admitted again a minute ago gets a fresh deadline even if KubeRay's startTime is old.
    readmitted = admission_of(ADMITTED)
    verdict = rayjob_verdict(rayjob("Initializing", startTime=LONG_AGO), readmitted, "Suspended", NOW, DEADLINE)
    assert verdict.phase is Phase.Running


def test_admitted_but_still_suspended_is_queued_and_starting():
    verdict = rayjob_verdict(rayjob("Suspended", suspend=True), admission_of(ADMITTED), "Queued", NOW, DEADLINE)
    assert (verdict.phase, verdict.reason, verdict.stage) == (Phase.Queued, "Admitted", "admitted")


def test_waiting_for_quota_says_why():
    verdict = rayjob_verdict(rayjob("Suspended", suspend=True), admission_of(PENDING), None, NOW, DEADLINE)
    assert verdict.message == "couldn't assign flavors to pod set workers"


def test_preempted_job_is_suspended_not_queued():
    evicted = workload(
        ("Evicted", "True", "Preempted"),
        ("Admitted", "False", "NoReservation"),
        message="Preempted to accommodate a higher priority Workload",
    )
    verdict = rayjob_verdict(rayjob("Suspending", suspend=True), admission_of(evicted), "Running", NOW, DEADLINE)
    assert (verdict.phase, verdict.reason) == (Phase.Suspended, "Preempted")
    assert "higher priority" in verdict.message


def test_a_workload_an_administrator_deactivated_is_suspended_not_failed():
    deactivated = workload(("Evicted", "True", "Deactivated"), active=False, message="The workload is deactivated")
    verdict = rayjob_verdict(rayjob("Suspended", suspend=True), admission_of(deactivated), "Running", NOW, DEADLINE)
    assert (verdict.phase, verdict.reason) == (Phase.Suspended, "WorkloadDeactivated")


@pytest.mark.parametrize(
    "cause, reason",
    [("MaximumExecutionTimeExceeded", "DeadlineExceeded"), ("RequeuingLimitExceeded", "RequeuingLimitExceeded")],
)
def test_a_workload_kueue_deactivated_fails_the_job(cause, reason):
    # Kueue v0.19.2 evict.go: the Evicted reason of its own deactivations is "Deactivated" + "DueTo" + the cause.
    deactivated = workload(
        ("Evicted", "True", f"DeactivatedDueTo{cause}"),
        active=False,
        message=f"The workload is deactivated due to {cause}",
    )
    verdict = rayjob_verdict(
        rayjob("Running", "RUNNING", suspend=True), admission_of(deactivated), "Running", NOW, DEADLINE
    )
    assert (verdict.phase, verdict.reason) == (Phase.Failed, reason)


def test_workload_not_created_yet():
    assert admission_of(None) == Admission()
    verdict = rayjob_verdict(rayjob(suspend=True), admission_of(None), None, NOW, DEADLINE)
    assert (verdict.phase, verdict.reason) == (Phase.Queued, "WaitingForWorkload")


def test_a_queue_that_does_not_exist_is_named():
    missing = workload(("QuotaReserved", "False", "Misconfigured"), message="LocalQueue tuning doesn't exist")
    verdict = rayjob_verdict(rayjob(suspend=True), admission_of(missing), None, NOW, DEADLINE)
    assert (verdict.phase, verdict.reason, verdict.message) == (
        Phase.Queued,
        "QueueMisconfigured",
        "LocalQueue tuning doesn't exist",
    )


RUN = Run("TuningJob", "x", "hash-of-this-run", "s3://runs/x")


def _observe(
    previous: dict,
    rj: dict | None,
    wl: dict | None = None,
    now: datetime = NOW,
    record=UNREAD,
    deadlines: Deadlines = Deadlines(DEADLINE),
) -> dict | None:
    return observe(
        kind="TuningJob",
        generation=2,
        previous=previous,
        rayjob=rj,
        workload=wl,
        deadlines=deadlines,
        now=now,
        run=RUN,
        record=record,
    )


def test_vanished_rayjob_fails_the_job():
    status = _observe({"phase": "Running", "rayJobName": "tj-x"}, None)
    assert (status["phase"], status["reason"]) == ("Failed", "RayJobVanished")
    assert "re-apply" in status["message"] and status["completionTime"]


@pytest.mark.parametrize(
    "previous", [{"phase": "Succeeded", "rayJobName": "tj-x"}, {"phase": "Failed"}, {"phase": "Pending"}]
)
def test_finished_jobs_and_jobs_without_rayjob_are_left_alone(previous):
    assert _observe(previous, rayjob("Running", "RUNNING")) is None


def test_running_status_document():
    rj = rayjob("Running", "RUNNING", startTime=RECENT, dashboardURL="tj-x-head-svc.ns.svc:8265")
    status = _observe({"phase": "Queued", "rayJobName": "tj-x", "progress": "120/500"}, rj, ADMITTED)
    assert status["phase"] == "Running" and status["stage"] == "training" and status["observedGeneration"] == 2
    assert status["dashboardURL"] == "tj-x-head-svc.ns.svc:8265" and status["queue"] == "tuning"
    assert status["progress"] == "120/500"  # reported by the run; the mapping keeps it
    assert status["artifacts"] == {"checkpoints": "s3://runs/x/checkpoints", "metrics": "s3://runs/x/metrics.jsonl"}
    by_type = {c["type"]: c["status"] for c in status["conditions"]}
    assert by_type == {"Admitted": "True", "Running": "True", "Succeeded": "False", "Failed": "False"}


def test_success_records_the_model_and_drops_the_dead_dashboard_link():
    previous = {"phase": "Running", "rayJobName": "tj-x", "dashboardURL": "http://head:8265"}
    end = "2026-03-01T11:59:00Z"
    status = _observe(previous, rayjob("Complete", "SUCCEEDED", endTime=end), None)
    assert status["artifacts"]["model"] == "s3://runs/x/model"  # store not readable: where the run was told to write
    assert status["completionTime"] == end and "dashboardURL" not in status
    assert status_patch(previous, status)["dashboardURL"] is None  # merge patch deletes it


def test_the_model_is_the_one_this_run_recorded():
    record = {
        "kind": "TuningJob",
        "name": "x",
        "specHash": RUN.spec_hash,
        "phase": "Succeeded",
        "artifacts": {"model": "s3://runs/x/model-v2"},
    }
    done = _observe({"phase": "Running", "rayJobName": "tj-x"}, rayjob("Complete", "SUCCEEDED"), record=record)
    assert done["artifacts"]["model"] == "s3://runs/x/model-v2"
    foreign = dict(record, specHash="an-older-spec")
    done = _observe({"phase": "Running", "rayJobName": "tj-x"}, rayjob("Complete", "SUCCEEDED"), record=foreign)
    assert done["phase"] == "Succeeded" and "model" not in done["artifacts"]
    assert "no record of this run" in done["message"]
    missing = _observe({"phase": "Running", "rayJobName": "tj-x"}, rayjob("Complete", "SUCCEEDED"), record=None)
    assert "model" not in missing["artifacts"]


def test_conditions_keep_transition_times_until_they_change():
    first = _observe({"phase": "Queued", "rayJobName": "tj-x"}, rayjob("Running", "RUNNING"), ADMITTED)
    later = _observe(first, rayjob("Running", "RUNNING"), ADMITTED, now=NOW + timedelta(hours=1))
    assert first["conditions"] == later["conditions"]
    done = _observe(later, rayjob("Complete", "SUCCEEDED"), None, now=NOW + timedelta(hours=2))
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times["Admitted"] == first["conditions"][0]["lastTransitionTime"]
    assert times["Succeeded"] == times["Running"] == "2026-03-01T14:00:00Z"


def test_foreign_conditions_are_kept():
    previous = {
        "phase": "Queued",
        "rayJobName": "tj-x",
        "conditions": [
            {"type": "SpecOutOfDate", "status": "True", "reason": "SpecChanged", "lastTransitionTime": RECENT}
        ],
    }
    status = _observe(previous, rayjob("Running", "RUNNING"), ADMITTED)
    assert status["conditions"][0]["type"] == "SpecOutOfDate" and len(status["conditions"]) == 5


def test_status_patch_is_minimal():
    previous = {"phase": "Running", "message": "old", "stage": "training"}
    assert status_patch(previous, {"phase": "Running", "stage": "finishing"}) == {"message": None, "stage": "finishing"}


def test_compose_validates_against_the_status_model():
    with pytest.raises(ValueError):
        compose({}, Verdict(Phase.Running, "X"), 1, NOW, progress=120)


def test_admission_is_remembered_when_the_workload_is_gone():
    running = _observe({"phase": "Queued", "rayJobName": "tj-x"}, rayjob("Running", "RUNNING"), ADMITTED)
    failed = _observe(running, rayjob("Failed", reason="AppFailed"), None, now=NOW + timedelta(hours=1))
    admitted = next(c for c in failed["conditions"] if c["type"] == "Admitted")
    assert admitted["status"] == "True"
    assert admitted["lastTransitionTime"] == running["conditions"][0]["lastTransitionTime"]
    queued = _observe({"phase": "Queued", "rayJobName": "tj-x"}, rayjob(suspend=True), None)
    assert next(c for c in queued["conditions"] if c["type"] == "Admitted")["status"] == "Unknown"
