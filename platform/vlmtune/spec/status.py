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
    """The job ran and was suspended (e.g. preempted by Kueue); it resumes from its last checkpoint."""


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
    """Optimizer steps done out of planned, e.g. 120/500."""
    queue: str | None = None
    """Kueue LocalQueue the RayJob was submitted to."""
    conditions: list[Condition] = Field(default_factory=list)
    """Latest observations: Admitted, Running, Succeeded, Failed."""
    ray_job_name: str | None = None
    """Name of the child KubeRay RayJob (same namespace)."""
    dashboard_url: str | None = Field(default=None, alias="dashboardURL")
    """Ray dashboard of the job's cluster, while it exists."""
    metrics: dict[str, float] | None = None
    """Summary metrics of the run (e.g. final loss)."""
    artifacts: Artifacts | None = None
    """Output locations; chaining uses `artifacts.model`."""
    start_time: datetime | None = None
    """When Kueue admitted the job and its Ray cluster began to start."""
    completion_time: datetime | None = None
    """When the job reached Succeeded or Failed."""
