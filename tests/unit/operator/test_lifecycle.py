"""The operator's real handlers through KubeRay's and Kueue's lifecycles (tests/unit/operator/lifecycle.py replays
their state machines: KubeRay v1.7.0 rayjob_controller.go, Kueue v0.19.2 jobframework and workload controllers).

Every scenario is a table of steps (a controller reconciles, the scheduler admits or preempts, an administrator
deactivates, time passes, the owner suspends) with the phase and reason the job must show after the operator's
status tick. After every step, whatever the scenario, these hold:

- the status matches the cluster (Running: an unsuspended RayJob; Queued: a suspended or not yet started one;
  Succeeded: a RayJob that completed; Admitted=True only with an admitted Workload), and a terminal phase is final;
- every phase has a reason, and every wait a deadline, except a wait for the job's owner (spec.suspend);
- a job marked Failed holds no RayJob that can still run;
- an operator restarted at that point (kopf's resume handler, then the timer, from what the API server holds)
  reaches the same phase and creates nothing twice;
- nothing waits forever: with every controller frozen from that point on, the operator ends the job by its
  deadlines (or it waits for its owner).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest
from lifecycle import Cluster, Job, RayApp
from operator_docs import GPU_RUNTIME, live, stage2_doc, stage_doc

from vlmtune.spec.status import Phase
from vlmtune_operator.run import RUN_HASH_ANNOTATION
from vlmtune_operator.runtime import parse_runtime
from vlmtune_operator.status import OWNER, STAGE_WAIT, TERMINAL, can_still_run
from vlmtune_operator.stores import Stores

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NS = "team-vision"
READINESS, QUEUE = 1800, 7200
RUNTIME = parse_runtime(GPU_RUNTIME | {"readinessDeadlineSeconds": READINESS, "queueDeadlineSeconds": QUEUE})
PREEMPTED = "Preempted to accommodate a higher priority Workload"


def world(doc: dict | None = None, runtime=RUNTIME, **cluster_flags) -> Job:
    cluster = Cluster(START)
    for flag, value in cluster_flags.items():
        setattr(cluster, flag, value)
    return Job(cluster, live(doc or stage_doc()), runtime)


# Steps: each takes the job (and its cluster) and changes the world once.
def apply(job: Job) -> None:
    job.change()


def kueue(job: Job) -> None:
    job.cluster.kueue()


def kuberay(job: Job) -> None:
    job.cluster.kuberay()


def admit(job: Job) -> None:
    job.cluster.admit(job.rayjob)


def preempt(job: Job) -> None:
    job.cluster.evict(job.rayjob, "Preempted", PREEMPTED)


def pods_not_ready(job: Job) -> None:
    job.cluster.evict(job.rayjob, "PodsReadyTimeout", "Exceeded the PodsReady timeout")


def deactivate(cause: str | None = None):
    def step(job: Job) -> None:
        job.cluster.deactivate(job.rayjob, cause)

    step.__name__ = f"deactivate({cause})"
    return step


def reactivate(job: Job) -> None:
    job.cluster.reactivate(job.rayjob)


def wait(seconds: int):
    def step(job: Job) -> None:
        job.cluster.advance(seconds)

    step.__name__ = f"wait({seconds})"
    return step


def ray(**knobs):
    """The Ray job inside the cluster changes (the cluster becomes ready, the job runs, succeeds, fails)."""

    def step(job: Job) -> None:
        app = job.cluster.apps.setdefault(job.rayjob["metadata"]["uid"], RayApp())
        for key, value in knobs.items():
            setattr(app, key, value)

    step.__name__ = f"ray({knobs})"
    return step


def suspend(value: bool):
    def step(job: Job) -> None:
        job.edit_spec(suspend=value)
        job.change()  # kopf's update handler

    step.__name__ = f"suspend({value})"
    return step


def settle(job: Job) -> None:
    """Controllers run until nothing changes (the operator does not look in between)."""
    for _ in range(10):
        before = copy.deepcopy((job.cluster.rayjobs, job.cluster.workloads))
        job.cluster.kueue()
        job.cluster.kuberay()
        if (job.cluster.rayjobs, job.cluster.workloads) == before:
            return
    raise AssertionError("the controllers did not settle")


def slow_cluster(job: Job) -> None:
    """Cluster pods that take longer than any readiness deadline (GPU nodes, image pulls)."""
    job.cluster.apps.setdefault(job.rayjob["metadata"]["uid"], RayApp()).cluster_ready = False


# The walk every queued job takes before Kueue admits it: KubeRay initializes even a suspended RayJob.
QUEUED_WALK = [
    (apply, "Queued", "WaitingForWorkload"),  # created; Kueue has not seen it yet
    (kueue, "Queued", "WaitingForQuota"),
    (kuberay, "Queued", "WaitingForQuota"),  # Initializing with spec.suspend: not started (case 6)
    (kuberay, "Queued", "WaitingForQuota"),  # Suspending
    (kuberay, "Queued", "WaitingForQuota"),  # Suspended
]
START_RUNNING = [
    (admit, "Queued", "Admitted"),
    (kueue, "Queued", "Admitted"),  # unsuspended, KubeRay has not seen it
    (kuberay, "Pending", "RayJobCreated"),  # Suspended -> New
    (kuberay, "Running", "ClusterStarting"),  # New -> Initializing
    (kuberay, "Running", "ClusterStarting"),  # cluster ready: Running, job PENDING
    (ray(job_status="RUNNING"), "Running", "ClusterStarting"),
    (kuberay, "Running", "JobRunning"),
]

SCENARIOS = {
    "admitted-runs-and-succeeds": QUEUED_WALK
    + START_RUNNING
    + [
        (wait(600), "Running", "JobRunning"),
        (ray(job_status="SUCCEEDED"), "Running", "JobRunning"),
        (kuberay, "Succeeded", "Succeeded"),
        (kueue, "Succeeded", "Succeeded"),
    ],
    "preempted-requeued-readmitted": QUEUED_WALK
    + START_RUNNING
    + [
        (wait(900), "Running", "JobRunning"),
        (preempt, "Running", "JobRunning"),  # Evicted, Kueue has not acted yet
        (kueue, "Suspended", "Preempted"),  # stopJob: spec.suspend
        (kuberay, "Suspended", "Preempted"),  # Suspending
        (kuberay, "Suspended", "Preempted"),  # Suspended
        (kueue, "Suspended", "Preempted"),  # admission cleared, requeued
        (wait(1200), "Suspended", "Preempted"),
        *START_RUNNING,
        (ray(job_status="SUCCEEDED"), "Running", "JobRunning"),
        (kuberay, "Succeeded", "Succeeded"),
    ],
    "cumulative-deadline-survives-readmission": QUEUED_WALK
    + START_RUNNING
    + [
        (wait(2400), "Running", "JobRunning"),
        (preempt, "Running", "JobRunning"),
        (settle, "Suspended", "Preempted"),
        (wait(3000), "Suspended", "Preempted"),  # time in the queue does not count
        *START_RUNNING,
        (wait(1000), "Running", "JobRunning"),
        (wait(400), "Failed", "DeadlineExceeded"),  # 2400 + 1400 > 3600; KubeRay's own restarted at readmission
        (kuberay, "Failed", "DeadlineExceeded"),
    ],
    "readiness-deadline-deletes-the-rayjob": QUEUED_WALK
    + [
        (slow_cluster, "Queued", "WaitingForQuota"),
        *START_RUNNING[:4],
        (kuberay, "Running", "ClusterStarting"),  # cluster not ready: stays Initializing
        (wait(READINESS + 1), "Failed", "ReadinessDeadlineExceeded"),
        (kuberay, "Failed", "ReadinessDeadlineExceeded"),  # finalizer removed: RayJob, cluster, Workload gone
    ],
    "admitted-but-never-unsuspended": QUEUED_WALK
    + [  # kueue#13413: the Workload holds quota, nothing starts
        (lambda job: setattr(job.cluster, "kueue_never_unsuspends", True), "Queued", "WaitingForQuota"),
        (admit, "Queued", "Admitted"),
        (kueue, "Queued", "Admitted"),
        (wait(READINESS - 10), "Queued", "Admitted"),
        (wait(20), "Failed", "ReadinessDeadlineExceeded"),
        (kuberay, "Failed", "ReadinessDeadlineExceeded"),
    ],
    "kuberay-down-after-admission": QUEUED_WALK
    + [
        (lambda job: setattr(job.cluster, "kuberay_down", True), "Queued", "WaitingForQuota"),
        (admit, "Queued", "Admitted"),
        (kueue, "Queued", "Admitted"),  # unsuspended; KubeRay never moves it from Suspended
        (wait(READINESS + 1), "Failed", "ReadinessDeadlineExceeded"),
    ],
    "kueue-down-no-workload": [
        (apply, "Queued", "WaitingForWorkload"),  # created; Kueue has not seen it yet
        (kuberay, "Queued", "WaitingForWorkload"),
        (wait(QUEUE - 1), "Queued", "WaitingForWorkload"),
        (wait(2), "Failed", "QueueDeadlineExceeded"),
    ],
    "queue-does-not-exist": [
        (lambda job: job.cluster.missing_queues.add("tuning"), None, None),
        (apply, "Queued", "WaitingForWorkload"),  # created; Kueue has not seen it yet
        (kueue, "Queued", "QueueMisconfigured"),
        (settle, "Queued", "QueueMisconfigured"),
        (wait(QUEUE + 1), "Failed", "QueueDeadlineExceeded"),
        (kuberay, "Failed", "QueueDeadlineExceeded"),
    ],
    "kueue-max-execution-time": QUEUED_WALK
    + START_RUNNING
    + [
        (deactivate("MaximumExecutionTimeExceeded"), "Failed", "DeadlineExceeded"),
        (settle, "Failed", "DeadlineExceeded"),
    ],
    "pods-ready-timeout-then-requeuing-limit": QUEUED_WALK
    + START_RUNNING[:5]
    + [
        (pods_not_ready, "Running", "ClusterStarting"),
        (kueue, "Suspended", "PodsReadyTimeout"),
        (settle, "Suspended", "PodsReadyTimeout"),
        *START_RUNNING[:5],
        (deactivate("RequeuingLimitExceeded"), "Failed", "RequeuingLimitExceeded"),
        (settle, "Failed", "RequeuingLimitExceeded"),
    ],
    "administrator-pauses-and-resumes": QUEUED_WALK
    + START_RUNNING
    + [
        (deactivate(), "Running", "JobRunning"),  # Kueue has not stopped it yet
        (kueue, "Suspended", "WorkloadDeactivated"),
        (settle, "Suspended", "WorkloadDeactivated"),  # Kueue suspended the RayJob; it is kept, it can come back
        (reactivate, "Suspended", "Deactivated"),  # requeued; waits for quota under its eviction reason
        *START_RUNNING,
        (ray(job_status="SUCCEEDED"), "Running", "JobRunning"),
        (kuberay, "Succeeded", "Succeeded"),
    ],
    "owner-suspends-and-resumes": QUEUED_WALK
    + START_RUNNING
    + [
        (wait(1000), "Running", "JobRunning"),
        (suspend(True), "Suspended", "SuspendedByUser"),  # RayJob deleted: GPUs and quota freed
        (kuberay, "Suspended", "SuspendedByUser"),
        (wait(10 * QUEUE), "Suspended", "SuspendedByUser"),  # the owner's wait has no deadline
        (suspend(False), "Queued", "WaitingForWorkload"),  # a new RayJob, with what is left of the deadline
        *QUEUED_WALK[1:],
        *START_RUNNING,
        (ray(job_status="SUCCEEDED"), "Running", "JobRunning"),
        (kuberay, "Succeeded", "Succeeded"),
    ],
    "suspended-before-it-was-created": [
        (suspend(True), "Suspended", "SuspendedByUser"),
        (suspend(False), "Queued", "WaitingForWorkload"),
        *QUEUED_WALK[1:],
    ],
    "kuberay-retries-then-fails": QUEUED_WALK
    + START_RUNNING
    + [
        (ray(job_status="FAILED"), "Running", "JobRunning"),
        (kuberay, "Running", "ClusterStarting"),  # Retrying: a fresh cluster
        (ray(job_status="RUNNING"), "Running", "ClusterStarting"),
        (kuberay, "Pending", "RayJobCreated"),  # Retrying -> New
        (kuberay, "Running", "ClusterStarting"),
        (kuberay, "Running", "ClusterStarting"),
        (kuberay, "Running", "JobRunning"),
        (ray(job_status="FAILED"), "Running", "JobRunning"),
        (kuberay, "Failed", "AppFailed"),
    ],
    "rayjob-deleted-by-someone": QUEUED_WALK
    + START_RUNNING
    + [
        (lambda job: job.cluster.rayjobs.pop((NS, job.rayjob["metadata"]["name"])), "Failed", "RayJobVanished"),
    ],
}
RETRIES = {"kuberay-retries-then-fails": 1}
DEADLINES = {"cumulative-deadline-survives-readmission": 3600}


def _doc(scenario: str) -> dict:
    resources = {"workers": 8, "gpusPerWorker": 1, "cpusPerWorker": 8, "nodePool": "a100-80gb"}
    if scenario in DEADLINES:
        resources["activeDeadlineSeconds"] = DEADLINES[scenario]
    return stage_doc(resources=resources)


def _world(scenario: str) -> Job:
    runtime = RUNTIME.model_copy(update={"backoff_limit": RETRIES.get(scenario, 0)})
    return world(_doc(scenario), runtime)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lifecycle(scenario):
    job = _world(scenario)
    history = []
    for index, (step, phase, reason) in enumerate(SCENARIOS[scenario]):
        step(job)
        job.tick()
        where = f"{scenario} step {index} ({getattr(step, '__name__', 'step')})"
        if phase is not None:
            assert (job.status.get("phase"), job.status.get("reason")) == (phase, reason), (
                f"{where}: {job.status.get('message')}"
            )
        if job.status:
            check_invariants(job, history, where)
            check_restart(job, where)
            check_ends(job, where)
        history.append(job.status.get("phase"))


def check_invariants(job: Job, history: list, where: str) -> None:
    status, rayjob = job.status, job.rayjob
    phase, reason = status.get("phase"), status.get("reason")
    workload = job.cluster.workload_of(rayjob)
    deployment = ((rayjob or {}).get("status") or {}).get("jobDeploymentStatus", "")
    suspended = bool((rayjob or {}).get("spec", {}).get("suspend"))
    assert reason, f"{where}: no reason"
    if history and history[-1] in TERMINAL:
        assert phase == history[-1], f"{where}: left the terminal phase {history[-1]}"
    if phase not in TERMINAL:
        assert status.get("deadline") or _owner_wait(job), f"{where}: {phase}/{reason} waits without a deadline"
    if phase == "Failed":
        assert not can_still_run(rayjob), f"{where}: Failed, but RayJob can still run ({deployment})"
    if phase == "Running":
        assert rayjob is not None and not suspended, f"{where}: Running without an unsuspended RayJob"
    if phase == "Queued":
        assert rayjob is not None and (suspended or deployment in ("", "Suspended")), f"{where}: {deployment}"
    if phase == "Suspended":
        assert (
            rayjob is None
            or suspended
            or deployment in ("", "Suspending", "Suspended")
            or rayjob["metadata"].get("deletionTimestamp")
        ), f"{where}: Suspended but {deployment}"
    if phase == "Succeeded":
        assert rayjob is None or (deployment, rayjob["status"].get("jobStatus")) == ("Complete", "SUCCEEDED")
    admitted = next((c for c in status.get("conditions", []) if c["type"] == "Admitted"), {})
    if workload is not None and phase in ("Queued", "Suspended"):
        kueue_admitted = any(
            c["type"] == "Admitted" and c["status"] == "True" for c in workload["status"]["conditions"]
        )
        assert (admitted.get("status") == "True") == kueue_admitted, f"{where}: Admitted condition disagrees"


def _owner_wait(job: Job) -> bool:
    """The job waits for its owner (spec.suspend), or for an upstream job that does."""
    if STAGE_WAIT.get(job.status.get("stage") or "") == OWNER:
        return True
    if job.status.get("stage") != "waiting-upstream":
        return False
    upstreams = [job.cluster.jobs.get((NS, name)) for name in (job.status.get("upstreams") or {})]
    return any(STAGE_WAIT.get(((up or {}).get("status") or {}).get("stage") or "") == OWNER for up in upstreams)


def _clone(job: Job) -> Job:
    cluster = copy.deepcopy(job.cluster)
    return Job(cluster, copy.deepcopy(job.body), job.runtime)


def check_restart(job: Job, where: str) -> None:
    """An operator started afresh at this point: kopf runs the resume handler, then the timer."""
    restarted = _clone(job)
    creates = restarted.cluster.creates
    restarted.change()
    restarted.tick()
    assert (restarted.status.get("phase"), restarted.status.get("reason")) == (
        job.status.get("phase"),
        job.status.get("reason"),
    ), f"{where}: a restarted operator disagrees"
    assert restarted.cluster.creates == creates, f"{where}: a restarted operator created a second RayJob"


def check_ends(job: Job, where: str) -> None:
    """Freeze every controller here: the operator's deadlines still end the job (unless its owner holds it)."""
    frozen = _clone(job)
    frozen.cluster.kuberay_down = frozen.cluster.kueue_down = True
    for _ in range(4):
        if frozen.status.get("phase") in TERMINAL or _owner_wait(frozen):
            break
        assert frozen.status.get("deadline"), f"{where}: {frozen.status.get('reason')} has no deadline to wait for"
        deadline = datetime.fromisoformat(frozen.status["deadline"].replace("Z", "+00:00"))
        frozen.cluster.now = max(frozen.cluster.now, deadline) + timedelta(seconds=1)
        frozen.tick()
    phase = frozen.status.get("phase")
    assert phase in TERMINAL or _owner_wait(frozen), (
        f"{where}: still {phase}/{frozen.status.get('reason')} after every deadline passed"
    )
    if phase == Phase.Failed.value:
        assert not can_still_run(frozen.rayjob), f"{where}: failed by deadline but its RayJob can still run"


def _run(job: Job, steps) -> Job:
    for step, phase, reason in steps:
        step(job)
        job.tick()
        if phase is not None:
            assert (job.status.get("phase"), job.status.get("reason")) == (phase, reason), job.status.get("message")
    return job


@pytest.mark.parametrize(
    "scenario",
    [
        "readiness-deadline-deletes-the-rayjob",
        "admitted-but-never-unsuspended",
        "kueue-max-execution-time",
        "queue-does-not-exist",
    ],
)
def test_a_failed_job_gives_back_its_quota(scenario):
    job = _run(_world(scenario), SCENARIOS[scenario])
    settle(job)
    assert job.rayjob is None and not job.cluster.workloads  # RayJob gone, and with it Kueue's Workload


def test_the_cumulative_deadline_is_what_a_new_rayjob_gets():
    job = _run(
        world(),
        QUEUED_WALK
        + START_RUNNING
        + [
            (wait(5000), "Running", "JobRunning"),
            (suspend(True), "Suspended", "SuspendedByUser"),
            (kuberay, "Suspended", "SuspendedByUser"),
        ],
    )
    assert job.rayjob is None and job.status["activeSeconds"] == 5000
    _run(job, [(suspend(False), "Queued", "WaitingForWorkload")])
    deadline = RUNTIME.active_deadline_seconds - 5000
    assert job.rayjob["spec"]["activeDeadlineSeconds"] == deadline
    assert job.rayjob["metadata"]["labels"]["kueue.x-k8s.io/max-exec-time-seconds"] == str(deadline)


def test_a_job_without_a_queue_runs_without_kueue():
    # No queue label and an empty default queue: a suspended RayJob would wait for a Kueue that never admits it.
    doc = stage_doc()
    doc["metadata"]["labels"] = {}
    job = world(doc, RUNTIME.model_copy(update={"default_queue": None}))
    _run(
        job,
        [
            (apply, "Pending", "RayJobCreated"),
            (kueue, "Pending", "RayJobCreated"),
            (kuberay, "Running", "ClusterStarting"),
            (kuberay, "Running", "ClusterStarting"),
            (kuberay, "Running", "JobRunning"),
            (ray(job_status="SUCCEEDED"), "Running", "JobRunning"),
            (kuberay, "Succeeded", "Succeeded"),
        ],
    )
    assert not job.cluster.workloads


def test_operator_down_for_a_while_then_restarted():
    # The operator misses KubeRay's and Kueue's transitions, then resumes from what the API server holds.
    job = _run(world(), QUEUED_WALK)
    admit(job)
    for _ in range(6):
        settle(job)
    ray(job_status="SUCCEEDED")(job)
    settle(job)
    restarted = Job(job.cluster, job.body, job.runtime)
    restarted.change()
    restarted.tick()
    assert (restarted.status["phase"], restarted.status["reason"]) == ("Succeeded", "Succeeded")
    assert restarted.cluster.creates == 1


# --------------------------------------------------------------------------------------------- upstream jobs


def _pair():
    """Stage 1 and stage 2 in one cluster: stage 2 waits for stage 1's recorded model."""
    cluster = Cluster(START)
    stage1 = Job(cluster, live(stage_doc(), uid="uid-stage1"), RUNTIME)
    stage2 = Job(cluster, live(stage2_doc(), uid="uid-stage2"), RUNTIME)
    cluster.jobs[(NS, stage1.name)] = stage1.body  # the same object the API server would return
    return stage1, stage2


def test_a_deleted_upstream_fails_the_waiting_job():
    stage1, stage2 = _pair()
    stage1.change()
    stage2.change()
    assert (stage2.status["phase"], stage2.status["reason"]) == ("Pending", "WaitingForUpstream")
    assert stage2.status["upstreams"] == {"visionflan-stage1": "uid-stage1"}
    # Bounded by stage 1's own deadline (it is queued), plus one poll.
    assert stage2.status["deadline"] > stage1.status["deadline"]
    check_invariants(stage2, [], "waiting for an upstream that exists")
    del stage2.cluster.jobs[(NS, stage1.name)]
    stage2.change()  # kopf's retry after upstreamPollSeconds
    assert (stage2.status["phase"], stage2.status["reason"]) == ("Failed", "UpstreamDeleted")


def test_an_upstream_that_never_appears_fails_the_job_at_the_deadline():
    stage1, stage2 = _pair()
    del stage2.cluster.jobs[(NS, stage1.name)]
    stage2.change()
    assert stage2.status["reason"] == "WaitingForUpstream" and stage2.status["deadline"]
    stage2.cluster.advance(QUEUE - 1)
    stage2.change()
    assert stage2.status["phase"] == "Pending"
    stage2.cluster.advance(2)
    stage2.change()
    assert (stage2.status["phase"], stage2.status["reason"]) == ("Failed", "UpstreamMissing")


def test_the_downstream_starts_from_the_model_its_upstream_run_recorded():
    stage1, stage2 = _pair()
    stage1.status.update(phase="Succeeded", artifacts={"model": "s3://runs/visionflan-stage1/model-recorded"})
    stage2.change()
    entry = stage2.rayjob["spec"]["entrypoint"]
    assert "s3://runs/visionflan-stage1/model-recorded" in entry


# ---------------------------------------------------------------------------------------- the harness bites


def test_the_invariants_bite():
    job = _run(world(), QUEUED_WALK + START_RUNNING)
    broken = _clone(job)
    broken.status.update(phase="Failed", reason="Because")  # Failed while the RayJob runs
    with pytest.raises(AssertionError, match="can still run"):
        check_invariants(broken, [], "bite")
    broken = _clone(job)
    broken.status.pop("deadline")
    with pytest.raises(AssertionError, match="without a deadline"):
        check_invariants(broken, [], "bite")
    broken = _clone(job)
    broken.rayjob["spec"]["suspend"] = True
    with pytest.raises(AssertionError, match="Running without"):
        check_invariants(broken, [], "bite")
    with pytest.raises(AssertionError, match="left the terminal phase"):
        check_invariants(job, ["Succeeded"], "bite")
    stuck = _clone(job)
    stuck.runtime = RUNTIME.model_copy(update={"active_deadline_seconds": None})
    stuck.body["spec"]["resources"].pop("activeDeadlineSeconds", None)
    stuck.tick()
    with pytest.raises(AssertionError):  # no active deadline: a frozen running job would run forever
        check_ends(stuck, "bite")


# ----------------------------------------------------------------------------------- figures of this run only


def test_a_queued_job_shows_no_progress_of_an_older_run(tmp_path):
    # A job applied again over an older run's output: nothing of that run shows while it waits in the queue
    # (Suspending and Suspended are not "started"), nor once it runs, until its own run records itself.
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 90, "loss": 0.5, "total_steps": 100}) + "\n")
    (tmp_path / "job.json").write_text(
        json.dumps(
            {
                "kind": "TuningJob",
                "name": "visionflan-stage1",
                "specHash": "an-older-spec",
                "phase": "Succeeded",
                "artifacts": {"model": "s3://old/model"},
            }
        )
    )
    job = world(stage_doc(output={"uri": str(tmp_path)}))
    job.stores = Stores(job.cluster, RUNTIME)
    for step, phase, reason in QUEUED_WALK + START_RUNNING:
        step(job)
        job.tick()
        assert (job.status["phase"], job.status["reason"]) == (phase, reason)
        assert "progress" not in job.status and "metrics" not in job.status, job.status["reason"]
    own = {
        "kind": "TuningJob",
        "name": "visionflan-stage1",
        "phase": "Running",
        "specHash": job.rayjob["metadata"]["annotations"][RUN_HASH_ANNOTATION],
    }
    (tmp_path / "job.json").write_text(json.dumps(own))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 4.0, "total_steps": 100}) + "\n")
    job.tick()
    assert job.status["progress"] == "3/100 (3%)"
    (tmp_path / "job.json").write_text(
        json.dumps(own | {"phase": "Succeeded", "artifacts": {"model": f"{tmp_path}/model-exported"}})
    )
    _run(job, [(ray(job_status="SUCCEEDED"), "Running", "JobRunning"), (kuberay, "Succeeded", "Succeeded")])
    assert job.status["artifacts"]["model"] == f"{tmp_path}/model-exported"  # what the run recorded


def test_artifacts_follow_the_run_not_an_edited_spec(tmp_path):
    # A spec stored before the CRD made it immutable, edited after the RayJob was built: the artifacts and the
    # SpecOutOfDate condition say what runs, never the edit.
    job = _run(world(), QUEUED_WALK + START_RUNNING)
    job.edit_spec(output={"uri": "s3://runs/somewhere-else"})
    job.change()
    job.tick()
    assert job.status["artifacts"]["checkpoints"] == "s3://runs/visionflan-stage1/checkpoints"
    assert next(c for c in job.status["conditions"] if c["type"] == "SpecOutOfDate")["status"] == "True"
    _run(job, [(ray(job_status="SUCCEEDED"), "Running", "JobRunning"), (kuberay, "Succeeded", "Succeeded")])
    assert job.status["artifacts"]["model"] == "s3://runs/visionflan-stage1/model"


def test_labels_and_annotations_are_not_spec_drift():
    job = _run(world(), QUEUED_WALK)
    job.body["metadata"]["labels"]["team"] = "vision"
    job.body["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "2"
    job.change()
    assert not [c for c in job.status["conditions"] if c["type"] == "SpecOutOfDate"]


def test_a_rayjob_admission_refuses_fails_the_job_with_its_words():
    # E.g. Ray token auth turned off on a cluster whose policy requires it: the create is refused, for good.
    job = world()
    job.cluster.refuse = lambda rayjob: (
        "ValidatingAdmissionPolicy 'vlmtune-rayjobs' denied request: "
        "spec.rayClusterSpec.authOptions.mode: Ray clusters must use token auth"
    )
    _run(job, [(apply, "Failed", "RayJobRefused")])
    assert "must use token auth" in job.status["message"] and job.cluster.creates == 0
