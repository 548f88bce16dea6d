"""The real kopf loop against kmock, an in-memory Kubernetes API on 127.0.0.1: apply a job, see its RayJob,
play KubeRay by editing the RayJob's status, and watch the job's status follow to Succeeded; see a run's
metrics.jsonl show up as progress; apply an Experiment and see its child jobs and their RayJobs appear.

-m slow: about 1 run in 10 of tests/unit/operator, one of these tests failed and the event loop then never closed
(pytest-asyncio's runner waiting in `_cancel_all_tasks` for a task that ignores cancellation; kopf also takes over
SIGTERM, so `timeout` cannot stop the process). The cause is not found yet. The handlers these tests wire into kopf
are driven directly with KubeRay's and Kueue's state sequences in test_handlers.py, test_lifecycle.py and
test_experiment_handlers.py, which stay in the default run."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json

import pytest
from operator_docs import GPU_RUNTIME, experiment_doc, stage_doc

kopf = pytest.importorskip("kopf")
kmock_lib = pytest.importorskip("kmock")

pytestmark = pytest.mark.slow

from vlmtune.spec import KINDS, Experiment  # noqa: E402
from vlmtune_operator.client import KubeClient  # noqa: E402
from vlmtune_operator.handlers import configure, register  # noqa: E402
from vlmtune_operator.runtime import parse_runtime  # noqa: E402

NS = "team-vision"
JOBS = "vlmtune.dev/v1alpha1/tuningjobs"
EVALS = "vlmtune.dev/v1alpha1/evaljobs"
EXPERIMENTS = "vlmtune.dev/v1alpha1/experiments"
RAYJOBS = "ray.io/v1/rayjobs"
WORKLOADS = "kueue.x-k8s.io/v1beta2/workloads"
VERBS = ["list", "watch", "get", "create", "patch", "update", "delete"]


def _client_for(url: str) -> KubeClient:
    from kubernetes import client

    configuration = client.Configuration(host=url)
    return KubeClient(client.CustomObjectsApi(client.ApiClient(configuration)))


async def _until(predicate, timeout: float = 15.0):
    async def poll():
        while not (result := predicate()):
            await asyncio.sleep(0.05)
        return result

    return await asyncio.wait_for(poll(), timeout)


def _get(kmock, resource: str, name: str) -> dict | None:
    try:
        obj = kmock.objects[kmock_lib.resource(resource), NS, name]
    except KeyError:
        return None
    return None if obj.deleted else copy.deepcopy(dict(obj.raw))


@pytest.mark.asyncio
async def test_job_to_rayjob_to_succeeded_through_kopf(kmock):
    _serve(kmock, {JOBS: "TuningJob", RAYJOBS: "RayJob", WORKLOADS: "Workload"})
    job = stage_doc("smoke")
    job["metadata"].update(uid="job-uid", generation=1, resourceVersion="1")  # kopf patches with a test on it
    kmock.objects[kmock_lib.resource(JOBS), NS, "smoke"] = job

    async with _operator(kmock):
        rayjob = await _until(lambda: _get(kmock, RAYJOBS, "tj-smoke"))
        assert rayjob["spec"]["suspend"] is True
        assert rayjob["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
        status = await _until(
            lambda: (
                (_get(kmock, JOBS, "smoke") or {}).get("status", {}).get("rayJobName")
                and _get(kmock, JOBS, "smoke")["status"]
            )
        )
        assert status["phase"] == "Queued" and status["queue"] == "tuning"

        # Play KubeRay: the job runs, then succeeds.
        kmock.objects[kmock_lib.resource(RAYJOBS), NS, "tj-smoke"].patch(
            {
                "metadata": {"uid": "rj-uid"},
                "spec": {"suspend": False},
                "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "dashboardURL": "head:8265"},
            }
        )
        await _until(lambda: _get(kmock, JOBS, "smoke")["status"].get("stage") == "training")
        kmock.objects[kmock_lib.resource(RAYJOBS), NS, "tj-smoke"].patch(
            {"status": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2026-03-01T12:00:00Z"}}
        )
        done = await _until(
            lambda: (
                _get(kmock, JOBS, "smoke")["status"].get("phase") == "Succeeded"
                and _get(kmock, JOBS, "smoke")["status"]
            )
        )
        assert done["artifacts"]["model"] == "s3://runs/smoke/model"
        assert done["completionTime"] == "2026-03-01T12:00:00Z"
        # kmock keeps resourceVersion fixed, so kopf re-runs the create handler: reconcile must not re-create.
        assert len(kmock["post /apis/ray.io/v1/namespaces/team-vision/rayjobs"]) == 1


def _serve(kmock, resources: dict[str, str]) -> None:
    for resource, kind in resources.items():
        kmock.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True, verbs=VERBS, subresources=["status"])
    kmock.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=VERBS)


@contextlib.asynccontextmanager
async def _operator(kmock, kinds=KINDS):
    """The operator's registry in kopf's real loop, against kmock, with status ticks every second."""
    url = str(kmock.url).rstrip("/")
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_):
        return kopf.ConnectionInfo(server=url, insecure=True)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_):
        configure(settings)
        settings.posting.enabled = False
        settings.scanning.disabled = True
        settings.watching.server_timeout = 5
        settings.networking.request_timeout = 10

    register(registry, lambda: _client_for(url), parse_runtime(GPU_RUNTIME | {"statusIntervalSeconds": 1}), kinds)
    operator = asyncio.create_task(kopf.operator(registry=registry, standalone=True, namespaces=[NS]))
    try:
        yield
    finally:
        # Cancel rather than stop: a graceful stop waits 5 s for kmock's own server tasks, which kopf
        # mistakes for hung handlers because they share the event loop.
        operator.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(operator, 10)


def _status(kmock, resource: str, name: str) -> dict:
    return (_get(kmock, resource, name) or {}).get("status") or {}


@pytest.mark.asyncio
async def test_run_progress_appears_in_the_job_status(kmock, tmp_path):
    _serve(kmock, {JOBS: "TuningJob", RAYJOBS: "RayJob", WORKLOADS: "Workload"})
    job = stage_doc("progress", output={"uri": str(tmp_path)}, training={"globalBatchSize": 128, "maxSteps": 64})
    job["metadata"].update(uid="job-uid", generation=1, resourceVersion="1")
    kmock.objects[kmock_lib.resource(JOBS), NS, "progress"] = job
    async with _operator(kmock):
        await _until(lambda: _status(kmock, JOBS, "progress").get("rayJobName"))
        kmock.objects[kmock_lib.resource(RAYJOBS), NS, "tj-progress"].patch(
            {
                "metadata": {"uid": "rj-uid"},
                "spec": {"suspend": False},
                "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
            }
        )
        row = {
            "step": 16,
            "loss": 3.25,
            "learning_rate": 2e-5,
            "tokens_per_s": 5120.0,
            "samples_per_s": 2.5,
            "total_steps": 64,
            "mfu": 0.38,
        }
        (tmp_path / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        # The run's record, as `vlmtune run` writes it: figures count only for the run this RayJob carries.
        run_hash = _get(kmock, RAYJOBS, "tj-progress")["metadata"]["annotations"]["vlmtune.dev/run-hash"]
        (tmp_path / "job.json").write_text(
            json.dumps({"kind": "TuningJob", "name": "progress", "specHash": run_hash, "phase": "Running"})
        )
        status = await _until(
            lambda: (
                _status(kmock, JOBS, "progress").get("progress") == "16/64 (25%)" and _status(kmock, JOBS, "progress")
            )
        )
        assert status["phase"] == "Running" and status["metrics"]["mfu"] == 0.38
        (tmp_path / "metrics.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row | {"step": 48}) + "\n")
        await _until(lambda: _status(kmock, JOBS, "progress").get("progress") == "48/64 (75%)")


@pytest.mark.asyncio
async def test_experiment_fans_out_child_jobs_through_kopf(kmock):
    _serve(
        kmock,
        {JOBS: "TuningJob", EVALS: "EvalJob", EXPERIMENTS: "Experiment", RAYJOBS: "RayJob", WORKLOADS: "Workload"},
    )
    experiment = experiment_doc()
    experiment["metadata"].update(uid="exp-uid", generation=1, resourceVersion="1")
    kmock.objects[kmock_lib.resource(EXPERIMENTS), NS, "compare"] = experiment
    # Only Experiments are watched here: kmock 0.8 gives objects created through POST no resourceVersion, which
    # kopf's patches test against; the children's own handling is covered in test_experiment_handlers.py.
    async with _operator(kmock, kinds={"Experiment": Experiment}):
        status = await _until(
            lambda: _status(kmock, EXPERIMENTS, "compare").get("counts") and _status(kmock, EXPERIMENTS, "compare")
        )
        assert (status["phase"], status["progress"], status["counts"]) == ("Pending", "0/5", {"Pending": 5})
        stage2 = _get(kmock, JOBS, "compare-two-stage-stage2")
        assert stage2["metadata"]["ownerReferences"][0]["uid"] == "exp-uid"
        assert stage2["spec"]["model"]["from"]["job"] == "compare-two-stage-stage1"
        assert _get(kmock, EVALS, "compare-mixed-eval")["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"
        assert len(kmock["post /apis/vlmtune.dev/v1alpha1/namespaces/team-vision/tuningjobs"]) == 3
        assert len(kmock["post /apis/vlmtune.dev/v1alpha1/namespaces/team-vision/evaljobs"]) == 2

        # The children report progress; the experiment's timer aggregates them.
        kmock.objects[kmock_lib.resource(JOBS), NS, "compare-two-stage-stage1"].patch(
            {"status": {"phase": "Running", "progress": "4/8 (50%)"}}
        )
        kmock.objects[kmock_lib.resource(JOBS), NS, "compare-mixed-train"].patch({"status": {"phase": "Succeeded"}})
        # (A tick may read one child before and another after these patches: wait for a tick that saw both.)
        status = await _until(
            lambda: (
                _status(kmock, EXPERIMENTS, "compare").get("counts") == {"Running": 1, "Pending": 3, "Succeeded": 1}
                and _status(kmock, EXPERIMENTS, "compare")
            )
        )
        assert status["phase"] == "Running" and status["progress"] == "1/5"
        assert status["children"][0]["progress"] == "4/8 (50%)"
        assert len(kmock["post /apis/vlmtune.dev/v1alpha1/namespaces/team-vision/tuningjobs"]) == 3  # idempotent
