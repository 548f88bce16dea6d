"""`status`: what the operator reports about a job; the same model generates the CRD's status schema."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field

from vlmtune.spec.base import SpecModel


class Phase(str, Enum):
    Pending = "Pending"
    """Accepted; waiting for an upstream job or for its RayJob to be created."""
    Queued = "Queued"
    """The RayJob waits in its Kueue queue for quota."""
    Running = "Running"
    """Kueue admitted the RayJob: the Ray cluster starts or the job runs."""
    Succeeded = "Succeeded"
    """The job finished and recorded its artifacts."""
    Failed = "Failed"
    """The job failed; `reason` and `message` say why."""
    Suspended = "Suspended"
    """The job was stopped and waits to run again: preempted or paused by Kueue, or paused by its owner
    (spec.suspend); it resumes from its last checkpoint."""


TERMINAL_PHASES = frozenset({Phase.Succeeded, Phase.Failed})


class Condition(SpecModel):
    """A Kubernetes status condition (metav1.Condition)."""

    type: str
    """Condition type in CamelCase, e.g. Admitted, Running, Succeeded, Failed."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str
    """Machine-readable CamelCase reason of the last transition."""
    message: str = ""
    """Human-readable details."""
    last_transition_time: datetime
    """When `status` last changed."""
    observed_generation: int | None = None
    """The job's metadata.generation this condition was computed from."""


class Artifacts(SpecModel):
    """Where the job's outputs are; downstream jobs (`from: {job: NAME}`) read `model`."""

    model: str | None = None
    """Exported Hugging Face model; set only once the job has succeeded."""
    checkpoints: str | None = None
    """Checkpoint folder (resumable training state)."""
    metrics: str | None = None
    """Metrics written during training."""


class JobStatus(SpecModel):
    """Observed state of a job, written by the vlmtune operator."""

    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    phase: Phase | None = None
    """Coarse lifecycle phase."""
    reason: str | None = None
    """Machine-readable reason for the phase (e.g. UpstreamFailed, RayJobVanished, DeadlineExceeded)."""
    message: str | None = None
    """Human-readable explanation of the phase."""
    stage: str | None = None
    """Finer step inside the phase, e.g. waiting-upstream, queued, initializing, training."""
    progress: str | None = None
    """Optimizer steps done out of planned, e.g. 120/500 (24%), read from the run's metrics.jsonl; for an
    Experiment, its jobs that succeeded out of all, e.g. 2/5."""
    queue: str | None = None
    """Kueue LocalQueue the RayJob was submitted to."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Latest observations: Admitted, Running, Succeeded, Failed (one per type)."""
    ray_job_name: str | None = None
    """Name of the child KubeRay RayJob (same namespace)."""
    dashboard_url: str | None = Field(default=None, alias="dashboardURL")
    """Ray dashboard of the job's cluster, while it exists."""
    metrics: dict[str, float] | None = None
    """Latest training figures from the run's metrics.jsonl (step, loss, learningRate, tokensPerSecond,
    samplesPerSecond, mfu when measured), and the run's summary (e.g. loss.final) once job.json records it."""
    results: dict[str, float] | None = None
    """Headline benchmark figures of an EvalJob (e.g. pope.f1, mme.perception), once its results are written."""
    artifacts: Artifacts | None = None
    """Output locations; chaining uses `artifacts.model`."""
    start_time: datetime | None = None
    """When Kueue admitted the job and its Ray cluster began to start."""
    completion_time: datetime | None = None
    """When the job reached Succeeded or Failed."""
    deadline: datetime | None = None
    """When the operator stops waiting and fails the job unless the state changes: queued jobs at waitingSince plus
    the chart's queueDeadlineSeconds, starting jobs at admission plus readinessDeadlineSeconds, running jobs once
    their active time reaches activeDeadlineSeconds. Empty only while the job waits for its owner (spec.suspend) or
    for an upstream job that exists (and has its own deadline)."""
    waiting_since: datetime | None = None
    """When the job entered its current wait (queued, starting); the wait's deadline counts from it."""
    active_seconds: int | None = None
    """Seconds the job has been admitted and unsuspended over all its admissions (preemptions and suspensions do
    not restart the count): the cumulative deadline compares this with activeDeadlineSeconds."""
    active_since: datetime | None = None
    """Start of the current admitted period, while there is one."""
    upstreams: dict[str, str] | None = None
    """Upstream job name -> uid, as seen while this job waited for it: a seen upstream that disappears fails the job
    (UpstreamDeleted) instead of leaving it waiting."""


class ChildStatus(SpecModel):
    """One job an Experiment generated, as its own status reports it."""

    name: str
    """Name of the child TuningJob or EvalJob (same namespace)."""
    kind: str
    """TuningJob or EvalJob."""
    stage: str
    """stage1, stage2, train or eval."""
    phase: Phase | None = None
    """The child's phase (empty until its first status)."""
    reason: str | None = None
    """The child's reason for its phase."""
    progress: str | None = None
    """The child's progress, e.g. 37/128 (29%)."""


class ArmStatus(SpecModel):
    """One arm of an Experiment: its jobs together, and its evaluation's headline figures."""

    name: str
    """Arm name, e.g. two-stage, mixed, tasks-10."""
    phase: Phase
    """Failed if a job of the arm failed, Succeeded once all did, else the furthest state of its jobs."""
    jobs: str
    """Jobs of the arm that succeeded out of all, e.g. 2/3."""
    results: dict[str, float] | None = None
    """Headline figures of the arm's EvalJob, once it has them."""


class ExperimentStatus(JobStatus):
    """Observed state of an Experiment: its child jobs, per phase and per arm, and the comparison report."""

    counts: dict[str, int] | None = None
    """Child jobs per phase, e.g. {Succeeded: 2, Running: 1, Pending: 2}."""
    children: list[ChildStatus] = Field(default_factory=list)
    """Every child job in dependency order."""
    arms: list[ArmStatus] = Field(default_factory=list)
    """One row per arm."""
    report: str | None = None
    """report.md of the comparison, once the report step succeeded (summary.json and plots/ beside it)."""


STATUS_MODELS: dict[str, type[JobStatus]] = {"Experiment": ExperimentStatus}
"""Kinds whose status differs from `JobStatus`."""


def status_model(kind: str | None) -> type[JobStatus]:
    return STATUS_MODELS.get(kind or "", JobStatus)
