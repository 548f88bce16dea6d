"""`spec.resources`: how many workers, on what hardware."""

from __future__ import annotations

from pydantic import Field

from vlmtune.spec.base import SpecModel


class ResourcesSpec(SpecModel):
    """Ray Train workers and their hardware."""

    workers: int = Field(default=1, ge=1, le=1024)
    """Data-parallel training workers (one per GPU on clusters)."""
    gpus_per_worker: int = Field(default=0, ge=0, le=8)
    """GPUs per worker; 0 trains on CPU (fp32, gloo)."""
    cpus_per_worker: float = Field(default=1.0, gt=0, le=256)
    """Logical CPUs reserved per worker."""
    node_pool: str | None = None
    """Node pool named in the Helm chart's values (GPU type, tolerations, node selector)."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the run on a cluster (the RayJob's activeDeadlineSeconds); the chart's default when omitted."""
