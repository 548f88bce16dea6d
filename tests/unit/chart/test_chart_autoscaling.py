"""Autoscaling end to end through the chart: the runtime config of the `autoscaling` scenario (Karpenter pools,
elastic jobs on) makes the operator build elastic RayJobs that KubeRay v1.7.0 and Kueue v0.19 accept, whose pods land
on the NodePool Karpenter launches for their pool and are never drained by it; elastic jobs are refused with the
defaults; and the focused Karpenter check is shown to bite (it is written from the karpenter.sh/v1 API, not loaded
from the upstream CRD file, which ../shared/crds does not hold)."""

from __future__ import annotations

import copy

import pytest
from chart_engine import CHART
from chart_validate import kube_schema
from karpenter_schema import nodepool_errors, restricted_label

from vlmtune.spec import load_jobs
from vlmtune_operator.rayjob import ElasticJobsDisabled, build_rayjob
from vlmtune_operator.runtime import parse_runtime

JOBS = CHART.parents[1] / "jobs"


def _elastic_job(pool: str, namespace: str, output: str):
    [job] = load_jobs(
        [JOBS / "smoke.yaml"],
        overrides=[
            f"spec.resources.nodePool={pool}",
            "spec.resources.gpusPerWorker=1",
            f"metadata.namespace={namespace}",
            "spec.resources.workers=2",
            "spec.resources.elastic.minWorkers=1",
            "spec.resources.elastic.maxWorkers=4",
            "spec.training.globalBatchSize=48",
            f"spec.output.uri={output}smoke",
        ],
    )
    return job


def _prefix(out, namespace: str) -> str:
    return next(t["outputPrefix"] for t in out.values["tenants"] if t["namespace"] == namespace)


@pytest.fixture(scope="module")
def rayjob_schema() -> dict:
    if not kube_schema.RAYJOB_CRD.exists():
        pytest.skip(f"upstream KubeRay CRD not found at {kube_schema.RAYJOB_CRD}")
    return kube_schema.crd_schema(kube_schema.load_crd(kube_schema.RAYJOB_CRD), "v1")


def test_elastic_rayjobs_from_the_chart_runtime_are_accepted(rendered, rayjob_schema):
    out = rendered["autoscaling"]
    runtime = parse_runtime(out.one("ConfigMap"))
    assert runtime.elastic_jobs.enabled and runtime.elastic_jobs.idle_timeout_seconds == 120
    nodepools = {n["metadata"]["name"]: n for n in out.of_kind("NodePool")}
    for pool in out.values["nodePools"]:
        rayjob = build_rayjob(_elastic_job(pool["name"], "team-vision", _prefix(out, "team-vision")), runtime)
        defaulted, errors = kube_schema.admit(rayjob_schema, rayjob)
        errors += kube_schema.kuberay_errors(defaulted) + kube_schema.kueue_errors(defaulted)
        assert not errors, errors
        cluster = rayjob["spec"]["rayClusterSpec"]
        assert cluster["enableInTreeAutoscaling"] is True
        assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 120
        worker = cluster["workerGroupSpecs"][0]
        assert (worker["minReplicas"], worker["replicas"], worker["maxReplicas"]) == (1, 2, 4)
        assert worker["template"]["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
        # The worker pods select the NodePool by name and tolerate every taint its nodes get.
        pod = worker["template"]["spec"]
        nodepool = nodepools[pod["nodeSelector"]["karpenter.sh/nodepool"]]
        for taint in nodepool["spec"]["template"]["spec"]["taints"]:
            assert any(
                t["key"] == taint["key"] and t.get("effect") in (None, taint["effect"]) for t in pod["tolerations"]
            )
        # At its largest the job fits under the NodePool's GPU limit.
        assert worker["maxReplicas"] * 1 <= int(nodepool["spec"]["limits"]["nvidia.com/gpu"])


def test_the_default_install_refuses_elastic_jobs(rendered):
    runtime = parse_runtime(rendered["default"].one("ConfigMap"))
    assert runtime.elastic_jobs.enabled is False
    with pytest.raises(ElasticJobsDisabled, match="elasticJobs.enabled is false"):
        build_rayjob(_elastic_job("gpu", "vlmtune-jobs", _prefix(rendered["default"], "vlmtune-jobs")), runtime)


def test_cluster_autoscaler_pools_mark_ray_pods_safe_from_eviction(rendered):
    out = rendered["three-tenants-borrowing"]
    runtime = parse_runtime(out.one("ConfigMap"))
    [job] = load_jobs(
        [JOBS / "smoke.yaml"],
        overrides=[
            "spec.resources.nodePool=a100-80gb",
            "spec.resources.gpusPerWorker=1",
            "metadata.namespace=interns",
            f"spec.output.uri={_prefix(out, 'interns')}smoke",
        ],
    )
    cluster = build_rayjob(job, runtime)["spec"]["rayClusterSpec"]
    safe = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert cluster["workerGroupSpecs"][0]["template"]["metadata"]["annotations"] == safe
    assert cluster["headGroupSpec"]["template"]["metadata"]["annotations"] == safe


def test_the_karpenter_check_bites(rendered):
    nodepool = rendered["autoscaling"].of_kind("NodePool")[0]

    def errors_after(change) -> list[str]:
        broken = copy.deepcopy(nodepool)
        change(broken["spec"])
        return nodepool_errors(broken)

    assert nodepool_errors(nodepool) == []
    # Fields of the older v1beta1 API and typos are refused (the schema is closed).
    assert any(
        "'WhenUnderutilized' is not one of" in e
        for e in errors_after(lambda s: s["disruption"].update(consolidationPolicy="WhenUnderutilized"))
    )
    assert any(
        "'expireAfter' was unexpected" in e for e in errors_after(lambda s: s["disruption"].update(expireAfter="720h"))
    )
    assert any(
        "'consolidateAfter' is a required property" in e
        for e in errors_after(lambda s: s["disruption"].pop("consolidateAfter"))
    )
    assert any(
        "'group' is a required property" in e
        for e in errors_after(lambda s: s["template"]["spec"]["nodeClassRef"].pop("group"))
    )
    assert any(
        "'bogus' is not one of" in e
        for e in errors_after(lambda s: s["template"]["spec"]["taints"][0].update(effect="bogus"))
    )
    assert any("does not match" in e for e in errors_after(lambda s: s["limits"].update({"nvidia.com/gpu": "8 GPUs"})))
    assert any("101 is greater than the maximum of 100" in e for e in errors_after(lambda s: s.update(weight=101)))
    # The rules Karpenter states in CEL.
    requirement = {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}
    assert errors_after(lambda s: s["template"]["spec"]["requirements"].append(requirement)) == [
        'spec.template.spec.requirements[3].key: label "karpenter.sh/nodepool" is restricted'
    ]
    assert errors_after(lambda s: s["template"]["spec"]["requirements"].append({"key": "a", "operator": "In"})) == [
        "spec.template.spec.requirements[3]: requirements with operator 'In' must have a value defined"
    ]
    assert errors_after(lambda s: s["template"]["spec"]["nodeClassRef"].update(name="")) == [
        "spec.template.spec.nodeClassRef.name: name may not be empty"
    ]
    assert errors_after(lambda s: s["disruption"]["budgets"][0].update(schedule="@daily")) == [
        "spec.disruption.budgets[0]: 'schedule' must be set with 'duration'"
    ]
    assert errors_after(lambda s: s["template"].update(metadata={"labels": {"kubernetes.io/role": "gpu"}})) == [
        'spec.template.metadata.labels: label domain "kubernetes.io" is restricted'
    ]


def test_restricted_label_domains():
    allowed = [
        "karpenter.sh/capacity-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "karpenter.k8s.aws/instance-gpu-name",
        "cloud.google.com/gke-accelerator",
        "nvidia.com/gpu.present",
        "kops.k8s.io/instancegroup",
        "vlmtune.dev/node-pool",
    ]
    assert [key for key in allowed if restricted_label(key)] == []
    refused = [
        "karpenter.sh/nodepool",
        "kubernetes.io/hostname",
        "kubernetes.io/role",
        "k8s.io/x",
        "karpenter.sh/anything",
        "karpenter.k8s.aws/made-up",
    ]
    assert [key for key in refused if not restricted_label(key)] == []
