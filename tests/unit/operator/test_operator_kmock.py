"""The real kopf loop against kmock, an in-memory Kubernetes API on 127.0.0.1: apply a job, see its RayJob,
play KubeRay by editing the RayJob's status, and watch the job's status follow to Succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import copy

import pytest
from operator_docs import GPU_RUNTIME, stage_doc

kopf = pytest.importorskip("kopf")
kmock_lib = pytest.importorskip("kmock")

from vlmtune_operator.client import KubeClient  # noqa: E402
from vlmtune_operator.handlers import configure, register  # noqa: E402
from vlmtune_operator.runtime import parse_runtime  # noqa: E402

NS = "team-vision"
JOBS = "vlmtune.dev/v1alpha1/tuningjobs"
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
    for resource, kind in ((JOBS, "TuningJob"), (RAYJOBS, "RayJob"), (WORKLOADS, "Workload")):
        kmock.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True, verbs=VERBS,
                                                       subresources=["status"])
    # kopf looks up core/v1 namespaces before it watches anything namespaced; kmock 0.8 cannot parse
    # `GET /api/v1/namespaces`, so scanning is disabled below and kopf takes the namespace list as given.
    kmock.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=VERBS)
    job = stage_doc("smoke")
    job["metadata"].update(uid="job-uid", generation=1, resourceVersion="1")  # kopf patches with a test on it
    kmock.objects[kmock_lib.resource(JOBS), NS, "smoke"] = job

    url = str(kmock.url).rstrip("/")
    runtime = parse_runtime(GPU_RUNTIME | {"statusIntervalSeconds": 1})
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

    register(registry, lambda: _client_for(url), runtime)
    operator = asyncio.create_task(kopf.operator(registry=registry, standalone=True, namespaces=[NS]))
    try:
        rayjob = await _until(lambda: _get(kmock, RAYJOBS, "tj-smoke"))
        assert rayjob["spec"]["suspend"] is True
        assert rayjob["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
        status = (await _until(lambda: (_get(kmock, JOBS, "smoke") or {}).get("status", {}).get("rayJobName")
                               and _get(kmock, JOBS, "smoke")["status"]))
        assert status["phase"] == "Queued" and status["queue"] == "tuning"

        # Play KubeRay: the job runs, then succeeds.
        kmock.objects[kmock_lib.resource(RAYJOBS), NS, "tj-smoke"].patch(
            {"metadata": {"uid": "rj-uid"}, "spec": {"suspend": False},
             "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "dashboardURL": "head:8265"}})
        await _until(lambda: _get(kmock, JOBS, "smoke")["status"].get("stage") == "training")
        kmock.objects[kmock_lib.resource(RAYJOBS), NS, "tj-smoke"].patch(
            {"status": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED",
                        "endTime": "2026-03-01T12:00:00Z"}})
        done = await _until(lambda: _get(kmock, JOBS, "smoke")["status"].get("phase") == "Succeeded"
                            and _get(kmock, JOBS, "smoke")["status"])
        assert done["artifacts"]["model"] == "s3://runs/smoke/model"
        assert done["completionTime"] == "2026-03-01T12:00:00Z"
        # kmock keeps resourceVersion fixed, so kopf re-runs the create handler: reconcile must not re-create.
        assert len(kmock["post /apis/ray.io/v1/namespaces/team-vision/rayjobs"]) == 1
    finally:
        # Cancel rather than stop: a graceful stop waits 5 s for kmock's own server tasks, which kopf
        # mistakes for hung handlers because they share the event loop.
        operator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, 10)
