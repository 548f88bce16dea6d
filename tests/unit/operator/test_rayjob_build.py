"""`build_rayjob`: golden output for a stage-1 GPU job, plus the properties KubeRay, Kueue and `vlmtune run` rely on."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from operator_docs import job, live, stage2_doc, stage_doc

from vlmtune.spec import parse_documents
from vlmtune_operator.objects import owner_reference, with_owner
from vlmtune_operator.rayjob import BuildError, build_rayjob, cpu_quantity, rayjob_name
from vlmtune_operator.runtime import RuntimeConfig

GOLDEN = Path(__file__).parent / "golden" / "visionflan-stage1.rayjob.yaml"


def _containers(rayjob: dict) -> list[dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_stage1_matches_golden(gpu_runtime):
    # Regenerate with VLMTUNE_UPDATE_GOLDEN=1 after an intended change, and review the diff.
    built = build_rayjob(job(stage_doc()), gpu_runtime)
    if os.environ.get("VLMTUNE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(yaml.safe_dump(built, sort_keys=False, width=1_000_000))
    assert built == yaml.safe_load(GOLDEN.read_text())


def test_kueue_and_kuberay_lifecycle_fields(gpu_runtime):
    spec = build_rayjob(job(stage_doc()), gpu_runtime)["spec"]
    assert spec["suspend"] is True and spec["shutdownAfterJobFinishes"] is True
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["ttlSecondsAfterFinished"] == gpu_runtime.ttl_seconds_after_finished
    assert spec["activeDeadlineSeconds"] == gpu_runtime.active_deadline_seconds
    assert spec["rayClusterSpec"]["enableInTreeAutoscaling"] is False
    assert spec["rayClusterSpec"]["rayVersion"] == "2.60.0"


def test_labels_carry_queue_priority_and_ownership(gpu_runtime):
    labels = build_rayjob(job(stage_doc()), gpu_runtime)["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "tuning"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    assert labels["vlmtune.dev/job"] == "visionflan-stage1" and labels["vlmtune.dev/kind"] == "TuningJob"


def test_default_queue_only_fills_a_missing_label(gpu_runtime):
    doc = stage_doc(resources={"workers": 2})
    doc["metadata"]["labels"] = {}
    assert build_rayjob(job(doc), gpu_runtime)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tuning"
    assert "kueue.x-k8s.io/queue-name" not in build_rayjob(job(doc), RuntimeConfig())["metadata"]["labels"]


def test_head_schedules_only_and_workers_are_fixed_size(gpu_runtime):
    cluster = build_rayjob(job(stage_doc()), gpu_runtime)["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    [workers] = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 8


def test_worker_pods_land_on_the_node_pool_with_its_gpus(gpu_runtime):
    worker = build_rayjob(job(stage_doc()), gpu_runtime)["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == resources["requests"] == {"cpu": "11", "memory": "160Gi", "nvidia.com/gpu": "1"}
    assert worker["template"]["metadata"]["labels"]["vlmtune.dev/gpu-type"] == "A100-80GB"


def test_gpu_resource_name_comes_from_the_pool(gpu_runtime):
    doc = stage_doc(resources={"workers": 2, "gpusPerWorker": 4, "cpusPerWorker": 2, "nodePool": "mi300"})
    worker = build_rayjob(job(doc), gpu_runtime)["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    limits = worker["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "2", "memory": "200Gi", "amd.com/gpu": "4"}
    assert "nodeSelector" not in worker["template"]["spec"]


def test_every_pod_gets_shm_credentials_and_service_account(gpu_runtime):
    rayjob = build_rayjob(job(stage_doc()), gpu_runtime)
    cluster = rayjob["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == "vlmtune-ray"
        assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}]
    for container in _containers(rayjob):
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert container["envFrom"] == [{"secretRef": {"name": "object-store"}}]
        assert container["image"] == "registry.example/vlmtune:0.1.0"


def test_without_secret_or_service_account_none_is_referenced():
    rayjob = build_rayjob(job(stage_doc(resources={"workers": 1})), RuntimeConfig())
    for container in _containers(rayjob):
        assert "envFrom" not in container
    assert "serviceAccountName" not in rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]


def test_entrypoint_is_vlmtune_run_with_the_job_document(gpu_runtime):
    doc = stage_doc()
    doc["metadata"]["annotations"] = {"note": 'it\'s "quoted" $HOME `x`'}  # survives both shells unharmed
    built = build_rayjob(job(doc), gpu_runtime)
    argv = shlex.split(built["spec"]["entrypoint"])
    assert argv[:3] == ["vlmtune", "run", "--spec-json"] and len(argv) == 4
    assert json.loads(argv[3]) == job(doc).to_doc()
    assert parse_documents(argv[3], "entrypoint") == [job(doc)]  # what `vlmtune run --spec-json` does with it


def test_from_job_runs_on_the_upstream_model(gpu_runtime):
    built = build_rayjob(job(stage2_doc()), gpu_runtime, {"visionflan-stage1": "s3://runs/visionflan-stage1/model"})
    document = json.loads(shlex.split(built["spec"]["entrypoint"])[3])
    assert document["spec"]["model"]["pretrained"] == "s3://runs/visionflan-stage1/model"
    assert "from" not in document["spec"]["model"]
    [resolved] = parse_documents(json.dumps(document), "entrypoint")
    assert resolved.spec.model.from_ is None


def test_from_job_without_upstream_model_is_refused(gpu_runtime):
    with pytest.raises(BuildError, match="spec.model.from.job: no recorded model for upstream job 'visionflan-stage1'"):
        build_rayjob(job(stage2_doc()), gpu_runtime)


def test_names_fit_kuberay_and_stay_unique():
    assert rayjob_name("TuningJob", "smoke") == "tj-smoke"
    long_a, long_b = "a" * 50 + "-stage1", "a" * 50 + "-stage2"
    names = {rayjob_name("TuningJob", long_a), rayjob_name("TuningJob", long_b)}
    assert len(names) == 2
    for name in names:
        assert len(name) <= 47 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert rayjob_name("TuningJob", long_a) == rayjob_name("TuningJob", long_a)
    assert rayjob_name("TuningJob", "9lives").startswith("tj-")  # DNS-1035: must start with a letter


def test_deadline_from_the_spec_overrides_the_runtime_default(gpu_runtime):
    assert (
        build_rayjob(job(stage_doc()), gpu_runtime)["spec"]["activeDeadlineSeconds"]
        == gpu_runtime.active_deadline_seconds
    )
    doc = stage_doc(
        resources={"workers": 8, "gpusPerWorker": 1, "nodePool": "a100-80gb", "activeDeadlineSeconds": 3600}
    )
    assert build_rayjob(job(doc), gpu_runtime)["spec"]["activeDeadlineSeconds"] == 3600


def test_unknown_node_pool_names_the_field_and_the_choices(gpu_runtime):
    doc = stage_doc(resources={"workers": 8, "gpusPerWorker": 1, "nodePool": "h100"})
    known = r"\(known: a100-80gb, cpu, mi300\)"
    with pytest.raises(BuildError, match=rf"spec.resources.nodePool: unknown node pool 'h100' {known}"):
        build_rayjob(job(doc), gpu_runtime)


def test_more_cpus_than_the_pool_gives_is_refused(gpu_runtime):
    doc = stage_doc(resources={"workers": 8, "gpusPerWorker": 1, "cpusPerWorker": 16, "nodePool": "a100-80gb"})
    with pytest.raises(BuildError, match="cpusPerWorker: 16.0 is more than the node pool's 11 CPUs"):
        build_rayjob(job(doc), gpu_runtime)


def test_cpu_quantities():
    assert [cpu_quantity(x) for x in (1.0, 8, 1.5, 0.25)] == ["1", "8", "1500m", "250m"]


def test_owner_reference_makes_the_job_the_controller(gpu_runtime):
    body = live(stage_doc(), uid="abc")
    owned = with_owner(build_rayjob(job(stage_doc()), gpu_runtime), owner_reference(body))
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "name": "visionflan-stage1",
            "uid": "abc",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    again = with_owner(owned, owner_reference(body))
    assert again["metadata"]["ownerReferences"] == owned["metadata"]["ownerReferences"]


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict) -> list[str]:
    """What the Pod Security Standard "restricted" (Kubernetes >= 1.25) forbids in a pod spec."""
    problems = []
    pod_security = pod.get("securityContext") or {}
    for container in pod["containers"]:
        security = container.get("securityContext") or {}
        name = container["name"]
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if security.get("privileged"):
            problems.append(f"{name}: privileged")
    for volume in pod.get("volumes", []):
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {set(volume) - {'name'}}")
    problems += [f"host namespace {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    return problems


def test_ray_pods_meet_the_restricted_pod_security_profile(gpu_runtime):
    rayjob = build_rayjob(job(stage_doc()), gpu_runtime)
    cluster = rayjob["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        assert restricted_violations(group["template"]["spec"]) == []
    submitter = rayjob["spec"]["submitterPodTemplate"]["spec"]  # KubeRay's default, but restricted
    assert restricted_violations(submitter) == [] and submitter["restartPolicy"] == "Never"
    assert "command" not in submitter["containers"][0]  # KubeRay fills in `ray job submit`
    pod = cluster["headGroupSpec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == gpu_runtime.pod_security.run_as_user == 65532
    # The check bites.
    for change in (
        lambda p: p["securityContext"].update(runAsNonRoot=False),
        lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        lambda p: p["securityContext"].pop("seccompProfile"),
        lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
    ):
        broken = copy.deepcopy(pod)
        change(broken)
        assert restricted_violations(broken)


def test_a_judge_key_reaches_the_head_from_its_secret_and_nowhere_else(gpu_runtime):
    from vlmtune.spec import EvalJob

    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "judged"},
        "spec": {
            "model": {"pretrained": "s3://models/llava"},
            "benchmarks": [{"name": "llavabench", "data": "s3://bench/llava-bench-in-the-wild"}],
            "judge": {
                "endpoint": {
                    "url": "https://api.openai.com/v1",
                    "model": "gpt-4-0613",
                    "apiKeySecret": {"name": "openai", "key": "api-key"},
                }
            },
            "output": {"uri": "s3://runs/judged"},
        },
    }
    rayjob = build_rayjob(EvalJob.model_validate(doc), gpu_runtime)
    head, *workers = _containers(rayjob)
    assert head["env"] == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
    ]
    assert all("env" not in container for container in workers)
