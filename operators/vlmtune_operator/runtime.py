"""Cluster-side settings the job files deliberately leave out: image, node pools, queues, deadlines.

The Helm chart renders one `RuntimeConfig` into a ConfigMap; the operator reads it at start-up and
`vlmtune render --runtime FILE` reads the same file, so both build identical RayJobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from vlmtune.spec import SpecModel

CONFIGMAP_KEY = "runtime.yaml"


class Toleration(SpecModel):
    """A Kubernetes pod toleration (core/v1 Toleration)."""

    key: str | None = None
    operator: str | None = None
    """Exists or Equal."""
    value: str | None = None
    effect: str | None = None
    """NoSchedule, PreferNoSchedule or NoExecute."""
    toleration_seconds: int | None = None


class NodePool(SpecModel):
    """One node pool a job may name in `spec.resources.nodePool`."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Labels that pin worker pods to the pool's nodes."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints of the pool's nodes that worker pods tolerate (GPU pools are usually tainted)."""
    gpu_resource: str = "nvidia.com/gpu"
    """Extended resource name of the pool's accelerators."""
    gpu_type: str | None = None
    """Accelerator model, e.g. A100-80GB; recorded as a pod label for dashboards and billing."""
    cpu: str | None = None
    """CPU request and limit of one worker pod (defaults to the job's cpusPerWorker)."""
    memory: str | None = None
    """Memory request and limit of one worker pod (defaults to `workerMemory`)."""
    autoscaler: Literal["none", "cluster-autoscaler", "karpenter"] = "none"
    """Node autoscaler that adds and removes the pool's nodes; Ray pods on it are then marked so that it never
    drains a node under a running job (`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"` or
    `karpenter.sh/do-not-disrupt: "true"`)."""


class HeadResources(SpecModel):
    """Requests and limits of the Ray head pod (it schedules work, runs none: num-cpus is 0)."""

    cpu: str = "2"
    memory: str = "8Gi"


class AutoscalerResources(SpecModel):
    """Requests and limits of the Ray autoscaler sidecar in the head pod of an elastic job."""

    cpu: str = "500m"
    memory: str = "512Mi"


class ElasticJobs(SpecModel):
    """Elastic jobs (`spec.resources.elastic`): the Ray autoscaler resizes the worker group between the job's
    minWorkers and maxWorkers, and Kueue admits each resize as a workload slice. Needs Kueue with the
    ElasticJobsViaWorkloadSlices feature gate and KubeRay >= 1.5 (autoscaler v2)."""

    enabled: bool = False
    """Build elastic RayJobs; when false a job with `spec.resources.elastic` is refused (ElasticJobsDisabled)."""
    idle_timeout_seconds: int = Field(default=60, ge=0)
    """Seconds a worker pod stays idle before the Ray autoscaler removes it (and Kueue shrinks the workload)."""
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] = "Default"
    """Ray autoscaler upscaling: Conservative adds at most as many pending pods as the cluster has."""
    autoscaler: AutoscalerResources = Field(default_factory=AutoscalerResources)
    """Resources of the autoscaler sidecar."""


class Tenant(SpecModel):
    """A namespace the operator runs jobs in (the chart writes one per `tenants` entry)."""

    output_prefix: str
    """Object-store prefix the tenant's jobs write under, e.g. s3://runs/team-vision/; a job whose spec.output.uri
    lies elsewhere is refused (OutputOutsideTenant)."""
    object_store_secret: str | None = None
    """Secret in the tenant namespace with the object-store environment (AWS_ACCESS_KEY_ID...): its Ray pods get it,
    and the operator reads the tenant's run files with it. Default: `objectStoreSecret`."""


class PodSecurity(SpecModel):
    """Identity of the Ray containers; with it every Ray pod meets the Pod Security "restricted" profile."""

    run_as_user: int = Field(default=65532, ge=1)
    """Numeric user of the Ray containers (never root; the image's user)."""
    run_as_group: int = Field(default=65532, ge=0)
    """Numeric group of the Ray containers."""
    fs_group: int = Field(default=65532, ge=0)
    """Group owning the pods' volumes."""


class RuntimeConfig(SpecModel):
    """How the operator turns jobs into RayJobs on this cluster."""

    image: str = "vlmtune:0.1.0"
    """Container image with vlmtune installed (the `train` extra) and the Ray of `rayVersion`."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of every Ray container."""
    ray_version: str = "2.60.0"
    """Ray version inside `image`; KubeRay uses it to pick compatible commands."""
    ray_auth_mode: Literal["token", "disabled"] = "token"
    """Ray token authentication on the clusters the operator creates (KubeRay >= 1.5 keeps the token in a Secret)."""
    service_account: str | None = None
    """Service account of the Ray pods (e.g. one bound to object-store access via workload identity)."""
    object_store_secret: str | None = None
    """Secret whose keys become environment variables of every Ray pod (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL...)."""
    node_pools: dict[str, NodePool] = Field(default_factory=dict)
    """Node pools by name; a job picks one with `spec.resources.nodePool`."""
    default_node_pool: str | None = None
    """Node pool of jobs that name none."""
    worker_memory: str = "16Gi"
    """Memory of one worker pod when its node pool sets none."""
    head: HeadResources = Field(default_factory=HeadResources)
    """Ray head pod resources."""
    shm_size: str = "8Gi"
    """Size of the memory-backed /dev/shm (Ray's object store and DataLoader workers live there)."""
    default_queue: str | None = None
    """Kueue LocalQueue of jobs without the kueue.x-k8s.io/queue-name label."""
    ttl_seconds_after_finished: int = Field(default=600, ge=0)
    """Seconds KubeRay keeps a finished job's Ray cluster (for logs) before deleting it."""
    active_deadline_seconds: int | None = Field(default=7 * 24 * 3600, ge=1)
    """Default wall-clock limit of a RayJob; a job overrides it with spec.resources.activeDeadlineSeconds."""
    backoff_limit: int = Field(default=0, ge=0)
    """Times KubeRay retries a failed job on a fresh Ray cluster (training resumes from checkpoints)."""
    readiness_deadline_seconds: int = Field(default=1800, ge=1)
    """A RayJob admitted but not running its job after this long is marked Failed (and deleted) instead of
    hanging; raise it where new GPU nodes and multi-GB image pulls take longer."""
    queue_deadline_seconds: int | None = Field(default=7 * 24 * 3600, ge=1)
    """A job that waits this long in its queue (for quota, for a Workload, for a queue that does not exist, or
    preempted and not readmitted) is marked Failed and its RayJob deleted; null: queued jobs wait without limit."""
    upstream_poll_seconds: int = Field(default=60, ge=1)
    """How often a job waiting for its upstream job checks again."""
    status_interval_seconds: int = Field(default=30, ge=1)
    """How often the operator refreshes a job's status from its RayJob and Kueue Workload."""
    kueue_api_version: str = "kueue.x-k8s.io/v1beta2"
    """API version of Kueue Workloads read for admission status."""
    elastic_jobs: ElasticJobs = Field(default_factory=ElasticJobs)
    """Whether and how jobs with `spec.resources.elastic` get an autoscaling Ray cluster."""
    pod_security: PodSecurity = Field(default_factory=PodSecurity)
    """User and groups of the Ray pods."""
    tenants: dict[str, Tenant] | None = None
    """Tenant namespaces by name. When set (on a cluster) jobs in other namespaces are refused (NotATenant), a
    job's output must lie under its tenant's prefix, local paths are refused, and the operator reads a job's run
    files with its own namespace's Secret only. None (`vlmtune render` on a laptop): no tenancy checks."""


def parse_runtime(document: Any, source: str = "runtime config") -> RuntimeConfig:
    """A `RuntimeConfig` from a plain mapping or from a ConfigMap holding it under `runtime.yaml`.

    Raises:
        ValueError: naming the source and every invalid field.
    """
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        document = yaml.safe_load((document.get("data") or {}).get(CONFIGMAP_KEY, "")) or {}
    try:
        return RuntimeConfig.model_validate(document or {})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{source}: {problems}") from None


def load_runtime(path: str | Path | None) -> RuntimeConfig:
    """The runtime config in `path` (YAML, plain or ConfigMap), or the defaults when `path` is None."""
    if path is None:
        return RuntimeConfig()
    return parse_runtime(yaml.safe_load(Path(path).read_text(encoding="utf-8")), str(path))
