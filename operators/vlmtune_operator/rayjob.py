"""Pure translation of a job into the KubeRay RayJob that runs it: `build_rayjob(job, runtime) -> dict`.

The RayJob is created suspended so that Kueue admits it; its entrypoint is the same `vlmtune run` that
local runs use, with the job document passed in, so laptop and cluster share one code path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shlex
from collections.abc import Mapping

from vlmtune.spec import ARTIFACTS, QUEUE_LABEL, Job, short_names
from vlmtune_operator.chaining import resolve_document
from vlmtune_operator.errors import BuildError
from vlmtune_operator.run import OUTPUT_ANNOTATION, RUN_HASH_ANNOTATION, run_hash
from vlmtune_operator.runtime import NodePool, RuntimeConfig
from vlmtune_operator.tenancy import check_output, object_store_secret

RAYJOB_API_VERSION = "ray.io/v1"
MAX_NAME_LENGTH = 47
"""KubeRay rejects longer RayJob names: it derives cluster, pod and service names from them."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "vlmtune-operator"
JOB_LABEL = "vlmtune.dev/job"
KIND_LABEL = "vlmtune.dev/kind"
GPU_TYPE_LABEL = "vlmtune.dev/gpu-type"
SPEC_HASH_ANNOTATION = "vlmtune.dev/spec-hash"
MAX_EXEC_TIME_LABEL = "kueue.x-k8s.io/max-exec-time-seconds"
"""Kueue deactivates a Workload once it has been admitted this long in total, over every admission: the same
cumulative deadline the operator keeps, enforced while the operator is down too."""
WORKER_GROUP = "workers"
SHM_VOLUME = "dshm"
ELASTIC_JOB_ANNOTATION = "kueue.x-k8s.io/elastic-job"
"""Kueue's per-job opt-in to workload slicing: with the value "true" (and Kueue's ElasticJobsViaWorkloadSlices
feature gate) Kueue lets a RayJob use the in-tree Ray autoscaler and admits each resize as a new slice."""
AUTOSCALER_VERSION = "v2"
"""Ray autoscaler v2 (KubeRay >= 1.5): the version Kueue's RayJob autoscaling support is built and tested with."""
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""Container-level half of the "restricted" profile: Ray needs no capability and no privilege escalation."""
NO_DRAIN_ANNOTATIONS: dict[str, dict[str, str]] = {
    "none": {},
    "cluster-autoscaler": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "karpenter": {"karpenter.sh/do-not-disrupt": "true"},
}
"""Pod annotations that stop a node autoscaler from draining a node to consolidate it: evicting one Ray pod
kills the whole training run (an elastic job's idle workers are removed by the Ray autoscaler, not by draining)."""


class ElasticJobsDisabled(BuildError):
    """The job asks for elastic workers but the cluster's runtime config (Helm value elasticJobs.enabled) is off."""

    reason = "ElasticJobsDisabled"


def build_rayjob(
    job: Job,
    runtime: RuntimeConfig,
    models: Mapping[str, str] | None = None,
    namespace: str | None = None,
    active_seconds: int = 0,
) -> dict:
    """The RayJob that runs `job`.

    Args:
        job: a validated job with `spec.resources` and `spec.output`.
        runtime: cluster settings (image, node pools, deadlines, tenants).
        models: upstream job name -> recorded model URI, for jobs that start `from` another job.
        namespace: where the RayJob goes (defaults to the job's own namespace).
        active_seconds: admitted time earlier RayJobs of the job used (it was suspended): the deadline is what is
            left of the job's activeDeadlineSeconds.

    Raises:
        BuildError: unknown node pool, too few CPUs in the pool, an upstream model missing, a bad annotation, an
            output outside the tenant's storage.
    """
    namespace = namespace or job.metadata.namespace
    check_output(runtime, namespace, job.spec.output.uri)
    document = entry_document(job, models or {})
    labels = _labels(job, runtime)
    queued = QUEUE_LABEL in labels
    metadata = {
        "name": rayjob_name(job.kind, job.name),
        "namespace": namespace,
        "labels": labels,
        "annotations": {SPEC_HASH_ANNOTATION: spec_hash(job.to_doc()), OUTPUT_ANNOTATION: job.spec.output.uri},
    }
    if job.kind in ARTIFACTS:  # kinds whose run records itself in job.json
        metadata["annotations"][RUN_HASH_ANNOTATION] = run_hash(document)
    if elastic_bounds(job, runtime) is not None:
        metadata["annotations"][ELASTIC_JOB_ANNOTATION] = "true"
    if metadata["namespace"] is None:
        del metadata["namespace"]  # rendered without a namespace: `kubectl apply -n` decides
    spec = {
        "entrypoint": entrypoint(document),
        "submissionMode": "K8sJobMode",
        # Kueue unsuspends a queued RayJob on admission; one without a queue would wait for nobody.
        "suspend": queued,
        "shutdownAfterJobFinishes": True,  # frees the queue's quota the moment the job ends
        "ttlSecondsAfterFinished": runtime.ttl_seconds_after_finished,
        "backoffLimit": runtime.backoff_limit,
        "rayClusterSpec": _cluster_spec(job, runtime, namespace),
        "submitterPodTemplate": submitter_template(runtime),
    }
    deadline = remaining_deadline(job, runtime, active_seconds)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
        if queued:
            labels[MAX_EXEC_TIME_LABEL] = str(deadline)
    return {"apiVersion": RAYJOB_API_VERSION, "kind": "RayJob", "metadata": metadata, "spec": spec}


def rayjob_name(kind: str, job_name: str) -> str:
    """`<kind short name>-<job name>`, cut to KubeRay's limit with a hash suffix that keeps it unique."""
    name = f"{(short_names(kind) or [kind.lower()])[0]}-{job_name}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def entry_document(job: Job, models: Mapping[str, str]) -> dict:
    """The job document the RayJob runs: upstream references resolved to model URIs, `suspend` left out (pausing
    and resuming a job must not make its run another one)."""
    try:
        document = resolve_document(job.to_doc(), models)
    except KeyError as missing:
        raise BuildError(f"spec.model.from.job: no recorded model for upstream job {missing}") from None
    document["spec"].pop("suspend", None)
    return document


def entrypoint(document: Mapping) -> str:
    """The shell command KubeRay submits: one quoted argument, so no shell ever re-splits the JSON."""
    return f"vlmtune run --spec-json {shlex.quote(json.dumps(document, separators=(',', ':')))}"


def spec_hash(document: Mapping) -> str:
    """Short digest of the job's kind and spec as written (upstream references unresolved, `suspend` left out); a
    different digest later means the spec was edited after its RayJob was created. Labels and annotations are not
    part of it: `kubectl label` or a GitOps annotation changes nothing that runs."""
    spec = {key: value for key, value in (document.get("spec") or {}).items() if key != "suspend"}
    content = {"kind": document.get("kind"), "spec": spec}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _labels(job: Job, runtime: RuntimeConfig) -> dict[str, str]:
    labels = dict(job.metadata.labels)
    if QUEUE_LABEL not in labels and runtime.default_queue:
        labels[QUEUE_LABEL] = runtime.default_queue
    labels.update({MANAGED_BY_LABEL: MANAGED_BY, JOB_LABEL: job.name, KIND_LABEL: job.kind})
    return labels


def active_deadline(job: Job, runtime: RuntimeConfig) -> int | None:
    """The job's limit of admitted time, over all its admissions (None: none)."""
    return job.spec.resources.active_deadline_seconds or runtime.active_deadline_seconds


def remaining_deadline(job: Job, runtime: RuntimeConfig, active_seconds: int) -> int | None:
    """What is left of the job's deadline after `active_seconds` of earlier admissions (at least 1 s: KubeRay
    and Kueue refuse 0, and the operator fails a job past its deadline before building another RayJob)."""
    deadline = active_deadline(job, runtime)
    return None if deadline is None else max(1, deadline - active_seconds)


def elastic_bounds(job: Job, runtime: RuntimeConfig) -> tuple[int, int] | None:
    """(minWorkers, maxWorkers) of an elastic job, None for a fixed-size one.

    Raises:
        ElasticJobsDisabled: the job is elastic but the cluster's runtime config turns elastic jobs off.
    """
    elastic = job.spec.resources.elastic
    if elastic is None:
        return None
    if not runtime.elastic_jobs.enabled:
        raise ElasticJobsDisabled(
            "spec.resources.elastic: elastic jobs are off on this cluster (Helm value elasticJobs.enabled is "
            "false: it needs Kueue's ElasticJobsViaWorkloadSlices feature gate); remove spec.resources.elastic "
            "to run a fixed-size job of spec.resources.workers workers"
        )
    return elastic.min_workers, elastic.max_workers


def _autoscaler_options(runtime: RuntimeConfig) -> dict:
    elastic = runtime.elastic_jobs
    amounts = {"cpu": elastic.autoscaler.cpu, "memory": elastic.autoscaler.memory}
    return {
        "version": AUTOSCALER_VERSION,
        "upscalingMode": elastic.upscaling_mode,
        "idleTimeoutSeconds": elastic.idle_timeout_seconds,
        "imagePullPolicy": runtime.image_pull_policy,
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }


SUBMITTER_CONTAINER = "ray-job-submitter"
"""KubeRay v1.7.0's name for it (utils.SubmitterContainerName); KubeRay fills in the `ray job submit` command."""


def submitter_template(runtime: RuntimeConfig) -> dict:
    """KubeRay's default submitter pod (common.GetSubmitterTemplate: the head's image, 500m/200Mi to 1/1Gi, never
    restarted), made to meet the "restricted" profile like the Ray pods."""
    resources = {"requests": {"cpu": "500m", "memory": "200Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    container = {
        "name": SUBMITTER_CONTAINER,
        "image": runtime.image,
        "imagePullPolicy": runtime.image_pull_policy,
        "resources": resources,
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    return {"spec": {"restartPolicy": "Never", "securityContext": pod_security(runtime), "containers": [container]}}


def pod_security(runtime: RuntimeConfig) -> dict:
    """Pod-level half of the Pod Security "restricted" profile: a non-root user and the runtime's seccomp profile.
    (Ray needs a writable root filesystem for /tmp/ray, so the root filesystem stays writable.)"""
    identity = runtime.pod_security
    return {
        "runAsNonRoot": True,
        "runAsUser": identity.run_as_user,
        "runAsGroup": identity.run_as_group,
        "fsGroup": identity.fs_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _cluster_spec(job: Job, runtime: RuntimeConfig, namespace: str | None) -> dict:
    elastic = elastic_bounds(job, runtime) is not None
    spec = {
        "rayVersion": runtime.ray_version,
        # Fixed jobs: Kueue reserved fixed quota and autoscaling would leave it. Elastic jobs: Kueue admits
        # every resize the autoscaler asks for as a workload slice.
        "enableInTreeAutoscaling": elastic,
        # Anyone who reaches the Jobs API can run code on the cluster: require Ray's token.
        "authOptions": {"mode": runtime.ray_auth_mode},
        "headGroupSpec": {
            "serviceType": "ClusterIP",  # never exposed outside the cluster; reach it by port-forward
            # The head only schedules: no training or data task may land on it and starve it.
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _pod(job, runtime, "ray-head", _head_resources(runtime), NodePool(), namespace, head=True),
        },
        "workerGroupSpecs": [_worker_group(job, runtime, namespace)],
    }
    if elastic:
        spec["autoscalerOptions"] = _autoscaler_options(runtime)
    return spec


def _worker_group(job: Job, runtime: RuntimeConfig, namespace: str | None) -> dict:
    workers = job.spec.resources.workers
    # Fixed size unless elastic: Ray Train's worker count is part of the spec and the batch size depends on it.
    low, high = elastic_bounds(job, runtime) or (workers, workers)
    pool = _node_pool(job, runtime)
    return {
        "groupName": WORKER_GROUP,
        "replicas": workers,
        "minReplicas": low,
        "maxReplicas": high,
        "rayStartParams": {},
        "template": _pod(
            job, runtime, "ray-worker", _worker_resources(job, runtime, pool), pool, namespace, head=False
        ),
    }


def _node_pool(job: Job, runtime: RuntimeConfig) -> NodePool:
    name = job.spec.resources.node_pool or runtime.default_node_pool
    if name is None:
        return NodePool()
    if name not in runtime.node_pools:
        known = ", ".join(sorted(runtime.node_pools)) or "none configured"
        raise BuildError(f"spec.resources.nodePool: unknown node pool {name!r} (known: {known})")
    return runtime.node_pools[name]


def _head_resources(runtime: RuntimeConfig) -> dict:
    amounts = {"cpu": runtime.head.cpu, "memory": runtime.head.memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _worker_resources(job: Job, runtime: RuntimeConfig, pool: NodePool) -> dict:
    resources = job.spec.resources
    cpu = pool.cpu or cpu_quantity(resources.cpus_per_worker)
    if millicores(cpu) < resources.cpus_per_worker * 1000:
        raise BuildError(
            f"spec.resources.cpusPerWorker: {resources.cpus_per_worker} is more than the node "
            f"pool's {cpu} CPUs per worker; lower it or pick another nodePool"
        )
    amounts = {"cpu": cpu, "memory": pool.memory or runtime.worker_memory}
    if resources.gpus_per_worker:
        amounts[pool.gpu_resource] = str(resources.gpus_per_worker)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod(
    job: Job, runtime: RuntimeConfig, container: str, resources: dict, pool: NodePool, namespace: str | None, head: bool
) -> dict:
    labels = {JOB_LABEL: job.name}
    if pool.gpu_type and not head:
        labels[GPU_TYPE_LABEL] = pool.gpu_type
    main = {
        "name": container,
        "image": runtime.image,
        "imagePullPolicy": runtime.image_pull_policy,
        "resources": resources,
        "volumeMounts": [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    if head:
        main["ports"] = [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
        ]
    secret = object_store_secret(runtime, namespace)
    if secret:
        main["envFrom"] = [{"secretRef": {"name": secret}}]
    judge_env = _judge_env(job) if head else []
    if judge_env:  # the driver runs on the head and calls the judge: its key comes from the named Secret
        main["env"] = judge_env
    spec: dict = {
        "securityContext": pod_security(runtime),
        "containers": [main],
        # Docker's 64 MiB /dev/shm breaks Ray's object store and torch DataLoader workers.
        "volumes": [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": runtime.shm_size}}],
    }
    if runtime.service_account:
        spec["serviceAccountName"] = runtime.service_account
    if pool.node_selector:
        spec["nodeSelector"] = dict(pool.node_selector)
    if pool.tolerations:
        spec["tolerations"] = [toleration.to_doc() for toleration in pool.tolerations]
    metadata: dict = {"labels": labels}
    annotations = _no_drain(runtime) if head else NO_DRAIN_ANNOTATIONS[pool.autoscaler]
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": spec}


def _judge_env(job: Job) -> list[dict]:
    judge = getattr(job.spec, "judge", None)
    return judge.secret_env() if judge is not None else []


def _no_drain(runtime: RuntimeConfig) -> dict[str, str]:
    """The head may land on any autoscaled node (it has no pool): it carries every autoscaler's annotation."""
    merged: dict[str, str] = {}
    for pool in runtime.node_pools.values():
        merged.update(NO_DRAIN_ANNOTATIONS[pool.autoscaler])
    return merged


def cpu_quantity(cpus: float) -> str:
    """A Kubernetes CPU quantity: whole CPUs as "4", fractions in millicores as "1500m"."""
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000
