"""Elastic RayJobs (`spec.resources.elastic`): golden output, acceptance by KubeRay v1.7.0 (CRD + CEL) and Kueue
v0.19's RayJob rules, refusal when the cluster turns elastic jobs off, fixed jobs unchanged; and the annotations
that keep node autoscalers from draining a node under a running Ray pod."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import kopf
import pytest
import yaml
from kube_schema import RAYJOB_CRD, admit, crd_schema, kuberay_errors, kueue_errors, load_crd
from operator_docs import GPU_RUNTIME, FakeClient, job, live, stage_doc

from vlmtune_operator.handlers import reconcile
from vlmtune_operator.rayjob import ELASTIC_JOB_ANNOTATION, ElasticJobsDisabled, build_rayjob
from vlmtune_operator.runtime import parse_runtime

GOLDEN = Path(__file__).parent / "golden" / "visionflan-elastic.rayjob.yaml"
ELASTIC_RUNTIME = {
    **GPU_RUNTIME,
    "elasticJobs": {"enabled": True, "idleTimeoutSeconds": 120, "upscalingMode": "Conservative"},
}
SAFE_TO_EVICT = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
DO_NOT_DISRUPT = {"karpenter.sh/do-not-disrupt": "true"}


def elastic_doc(name: str = "visionflan-elastic", low: int = 2, high: int = 4, workers: int = 4) -> dict:
    # 96 is divisible by every world size in [2, 4]: the global batch stays the same as workers come and go.
    return stage_doc(
        name,
        resources={
            "workers": workers,
            "gpusPerWorker": 1,
            "cpusPerWorker": 8,
            "nodePool": "a100-80gb",
            "elastic": {"minWorkers": low, "maxWorkers": high},
        },
        training={"globalBatchSize": 96, "maxLength": 2048, "deepspeed": {"zeroStage": 2}},
    )


@pytest.fixture(scope="module")
def rayjob_schema() -> dict:
    if not RAYJOB_CRD.exists():
        pytest.skip(f"upstream KubeRay CRD not found at {RAYJOB_CRD} (the shared/ folder beside the checkout)")
    return crd_schema(load_crd(RAYJOB_CRD), "v1")


@pytest.fixture
def elastic_runtime():
    return parse_runtime(ELASTIC_RUNTIME)


def _errors(schema: dict, rayjob: dict) -> list[str]:
    defaulted, errors = admit(schema, rayjob)
    return errors + kuberay_errors(defaulted) + kueue_errors(defaulted)


def test_elastic_matches_golden(elastic_runtime):
    # Regenerate with VLMTUNE_UPDATE_GOLDEN=1 after an intended change, and review the diff.
    built = build_rayjob(job(elastic_doc()), elastic_runtime)
    if os.environ.get("VLMTUNE_UPDATE_GOLDEN"):
        GOLDEN.write_text(yaml.safe_dump(built, sort_keys=False, width=1_000_000))
    assert built == yaml.safe_load(GOLDEN.read_text())


def test_elastic_job_gets_the_autoscaler_bounds_and_kueues_opt_in(elastic_runtime):
    rayjob = build_rayjob(job(elastic_doc()), elastic_runtime)
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert rayjob["metadata"]["annotations"][ELASTIC_JOB_ANNOTATION] == "true"
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"] == {
        "version": "v2",
        "upscalingMode": "Conservative",
        "idleTimeoutSeconds": 120,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    [workers] = cluster["workerGroupSpecs"]
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (4, 2, 4)
    # Everything else is the fixed job's: suspended for Kueue, deleted when done, head schedules only.
    assert rayjob["spec"]["suspend"] is True and rayjob["spec"]["shutdownAfterJobFinishes"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


@pytest.mark.parametrize(
    "bounds", [(2, 4, 4), (1, 8, 1), (3, 3, 3)], ids=["start-at-max", "start-at-min", "degenerate"]
)
def test_elastic_rayjobs_are_accepted_by_kuberay_and_kueue(rayjob_schema, elastic_runtime, bounds):
    low, high, workers = bounds
    doc = elastic_doc(low=low, high=high, workers=workers)
    doc["spec"]["training"]["globalBatchSize"] = 840  # divisible by 1..8
    rayjob = build_rayjob(job(doc), elastic_runtime)
    assert _errors(rayjob_schema, rayjob) == []


def test_kueue_refuses_autoscaling_without_the_elastic_opt_in(rayjob_schema, elastic_runtime):
    rayjob = build_rayjob(job(elastic_doc()), elastic_runtime)
    for value in (None, "false", "True"):  # Kueue matches the value "true" exactly
        broken = copy.deepcopy(rayjob)
        if value is None:
            del broken["metadata"]["annotations"][ELASTIC_JOB_ANNOTATION]
        else:
            broken["metadata"]["annotations"][ELASTIC_JOB_ANNOTATION] = value
        assert _errors(rayjob_schema, broken) == ["in-tree autoscaling needs an elastic (workload-slicing) job"]


def test_kuberay_refuses_replicas_outside_the_bounds_and_a_bad_upscaling_mode(rayjob_schema, elastic_runtime):
    rayjob = build_rayjob(job(elastic_doc()), elastic_runtime)
    broken = copy.deepcopy(rayjob)
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = 5
    assert _errors(rayjob_schema, broken) == ["worker group workers: replicas outside [minReplicas, maxReplicas]"]
    broken = copy.deepcopy(rayjob)
    broken["spec"]["rayClusterSpec"]["autoscalerOptions"]["upscalingMode"] = "Fast"
    assert any("upscalingMode" in error and "'Fast' is not one of" in error for error in _errors(rayjob_schema, broken))


def test_elastic_job_is_refused_where_elastic_jobs_are_off(gpu_runtime):
    with pytest.raises(
        ElasticJobsDisabled,
        match=r"spec.resources.elastic: elastic jobs are off on this cluster "
        r"\(Helm value elasticJobs.enabled is false",
    ) as caught:
        build_rayjob(job(elastic_doc()), gpu_runtime)
    assert caught.value.reason == "ElasticJobsDisabled"


def test_operator_fails_the_job_with_the_elastic_reason(gpu_runtime):
    client, patch = FakeClient(), kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile(live(elastic_doc()), patch, client, gpu_runtime)
    assert patch.status["phase"] == "Failed" and patch.status["reason"] == "ElasticJobsDisabled"
    assert "remove spec.resources.elastic" in patch.status["message"]
    assert client.rayjobs == {}  # nothing was created


def test_fixed_jobs_stay_fixed_where_elastic_jobs_are_on(rayjob_schema, gpu_runtime, elastic_runtime):
    fixed = build_rayjob(job(stage_doc()), elastic_runtime)
    cluster = fixed["spec"]["rayClusterSpec"]
    [workers] = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 8
    assert cluster["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in cluster
    assert ELASTIC_JOB_ANNOTATION not in fixed["metadata"]["annotations"]
    assert fixed == build_rayjob(job(stage_doc()), gpu_runtime)  # the switch changes nothing for fixed jobs
    assert _errors(rayjob_schema, fixed) == []


@pytest.mark.parametrize(
    "autoscaler, worker_annotations",
    [("cluster-autoscaler", SAFE_TO_EVICT), ("karpenter", DO_NOT_DISRUPT), ("none", None)],
)
def test_ray_pods_on_autoscaled_pools_are_never_drained(rayjob_schema, autoscaler, worker_annotations):
    config = copy.deepcopy(ELASTIC_RUNTIME)
    config["nodePools"]["a100-80gb"]["autoscaler"] = autoscaler
    config["nodePools"]["mi300"]["autoscaler"] = "karpenter"
    rayjob = build_rayjob(job(elastic_doc()), parse_runtime(config))
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert cluster["workerGroupSpecs"][0]["template"]["metadata"].get("annotations") == worker_annotations
    # The head has no pool and may land on any autoscaled node: it carries every autoscaler's annotation.
    head = cluster["headGroupSpec"]["template"]["metadata"]["annotations"]
    assert head == {**(worker_annotations or {}), **DO_NOT_DISRUPT}
    assert _errors(rayjob_schema, rayjob) == []


def test_without_autoscaled_pools_pods_carry_no_annotations(elastic_runtime):
    cluster = build_rayjob(job(elastic_doc()), elastic_runtime)["spec"]["rayClusterSpec"]
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        assert "annotations" not in group["template"]["metadata"]


def test_runtime_rejects_unknown_autoscaler_and_upscaling_mode():
    with pytest.raises(ValueError, match=r"nodePools.cpu.autoscaler: Input should be 'none', 'cluster-autoscaler'"):
        parse_runtime({**GPU_RUNTIME, "nodePools": {"cpu": {"autoscaler": "gke"}}})
    with pytest.raises(ValueError, match=r"elasticJobs.upscalingMode: Input should be 'Default'"):
        parse_runtime({"elasticJobs": {"upscalingMode": "Fast"}})
