"""Test data of the operator tests: a GPU cluster's runtime config, job documents, a fake API facade.

A plain module (not conftest) so that test files import it by a name no other test folder uses.
"""

from __future__ import annotations

import copy
from pathlib import Path

from vlmtune.spec import KINDS, load_jobs

REPO = Path(__file__).resolve().parents[3]
JOB_FILES = sorted((REPO / "jobs").glob("*.yaml"))
# Files may name upstream jobs defined in other files (stage2.yaml takes stage1's model).
ALL_JOBS = {job.name: job for job in load_jobs(JOB_FILES)}


def load_job_file(path) -> list:
    return load_jobs([path], known=ALL_JOBS)


def artifacts_for(jobs) -> dict[str, str]:
    """Upstream models a file's jobs need but do not define: `<upstream output.uri>/model`."""
    names = {job.name for job in jobs}
    return {
        up: f"{ALL_JOBS[up].spec.output.uri}/model" for job in jobs for up in job.upstream_jobs() if up not in names
    }


def needs_node_pool(jobs) -> bool:
    return any(getattr(job.spec, "resources", None) and job.spec.resources.node_pool for job in jobs)


GPU_RUNTIME = {
    "image": "registry.example/vlmtune:0.1.0",
    "rayVersion": "2.60.0",
    "serviceAccount": "vlmtune-ray",
    "objectStoreSecret": "object-store",
    "defaultQueue": "tuning",
    "shmSize": "32Gi",
    "defaultNodePool": "cpu",
    "nodePools": {
        "cpu": {"cpu": "4", "memory": "16Gi"},
        "a100-80gb": {
            "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "gpuType": "A100-80GB",
            "cpu": "11",
            "memory": "160Gi",
        },
        "mi300": {"gpuResource": "amd.com/gpu", "memory": "200Gi"},
    },
}


def stage_doc(name: str = "visionflan-stage1", **spec_overrides) -> dict:
    """A GPU stage-1 job like DESIGN.md's, as a document; `spec_overrides` replace whole spec sections."""
    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {
            "name": name,
            "namespace": "team-vision",
            "labels": {"kueue.x-k8s.io/queue-name": "tuning", "kueue.x-k8s.io/priority-class": "high"},
        },
        "spec": {
            "model": {
                "languageModel": "lmsys/vicuna-13b-v1.5",
                "visionTower": "openai/clip-vit-large-patch14-336",
                "trainable": ["projector", "language_model"],
            },
            "data": {
                "sources": [{"uri": "s3://datasets/vision-flan/annotation.json", "maxPerTask": 10000}],
                "mixture": "uniform",
            },
            "training": {"globalBatchSize": 128, "maxLength": 2048, "deepspeed": {"zeroStage": 3}},
            "resources": {"workers": 8, "gpusPerWorker": 1, "cpusPerWorker": 8, "nodePool": "a100-80gb"},
            "output": {"uri": f"s3://runs/{name}"},
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def stage2_doc(name: str = "visionflan-stage2", upstream: str = "visionflan-stage1") -> dict:
    return stage_doc(
        name,
        model={"from": {"job": upstream}},
        data={"sources": [{"uri": "s3://datasets/llava/gpt4.json", "format": "llava"}]},
    )


def eval_doc(name: str = "eval-stage1", upstream: str = "visionflan-stage1") -> dict:
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": name, "namespace": "team-vision", "labels": {"kueue.x-k8s.io/queue-name": "tuning"}},
        "spec": {
            "model": {"from": {"job": upstream}},
            "benchmarks": [{"name": "pope", "data": "s3://datasets/pope/"}, {"name": "mme", "demo": {}}],
            "resources": {"workers": 2, "gpusPerWorker": 1, "nodePool": "a100-80gb"},
            "output": {"uri": f"s3://runs/{name}"},
        },
    }


def experiment_doc(name: str = "compare", namespace: str = "team-vision", output: str = "s3://runs/compare") -> dict:
    """A small mixed-vs-two-stage Experiment on the tiny model (two arms, five jobs), queued with a priority."""
    stage = {"steps": 8, "data": {"sources": [{"demo": {"perTask": 8}}]}}
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/queue-name": "tuning", "kueue.x-k8s.io/priority-class": "high"},
        },
        "spec": {
            "study": {"type": "mixed-vs-two-stage"},
            "base": {"model": {"preset": "tiny"}, "training": {"globalBatchSize": 4, "microBatchSize": 2}},
            "stages": {"stage1": stage, "stage2": stage},
            "evaluation": {"benchmarks": [{"name": "pope", "demo": {}}]},
            "resources": {"workers": 2},
            "output": {"uri": output},
        },
    }


def job(doc: dict):
    return KINDS[doc["kind"]].model_validate(doc)


def live(doc: dict, uid: str = "uid-1", generation: int = 1, status: dict | None = None) -> dict:
    """`doc` as the API server returns it: uid, generation, system annotations, maybe a status."""
    body = copy.deepcopy(doc)
    body["metadata"].update(uid=uid, generation=generation, resourceVersion="7")
    body["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = "{...}"
    if status is not None:
        body["status"] = status
    return body


class FakeClient:
    """In-memory stand-in for `KubeClient` with its semantics: 404 -> None, create on 409 -> existing."""

    def __init__(self):
        self.rayjobs: dict[tuple[str, str], dict] = {}
        self.jobs: dict[tuple[str, str], dict] = {}
        self.workloads: dict[str, dict] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.deletes: list[tuple[str, str]] = []
        self.creates = 0

    def get_rayjob(self, namespace, name):
        found = self.rayjobs.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def create_rayjob(self, namespace, body):
        self.creates += 1
        key = (namespace, body["metadata"]["name"])
        if key not in self.rayjobs:
            stored = copy.deepcopy(body)
            stored["metadata"].update(namespace=namespace, uid=f"rayjob-uid-{len(self.rayjobs)}")
            self.rayjobs[key] = stored
        return copy.deepcopy(self.rayjobs[key])

    def get_job(self, namespace, name, kind=None):
        found = self.jobs.get((namespace, name))
        return copy.deepcopy(found) if found and kind in (None, found.get("kind")) else None

    def create_job(self, namespace, body):
        self.creates += 1
        key = (namespace, body["metadata"]["name"])
        if key not in self.jobs:
            stored = copy.deepcopy(body)
            stored["metadata"].update(namespace=namespace, uid=f"job-uid-{len(self.jobs)}", generation=1)
            self.jobs[key] = stored
        return copy.deepcopy(self.jobs[key])

    def find_workload(self, namespace, owner_uid):
        return copy.deepcopy(self.workloads.get(owner_uid))

    def delete_rayjob(self, namespace, name, uid):
        found = self.rayjobs.get((namespace, name))
        if found is not None and found["metadata"].get("uid") == uid:
            self.deletes.append((namespace, name))
            del self.rayjobs[(namespace, name)]

    def get_secret(self, namespace, name):
        found = self.secrets.get((namespace, name))
        return None if found is None else {"data": dict(found), "resourceVersion": "1"}
