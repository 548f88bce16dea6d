"""`spec.resources`: how many workers, on what hardware."""

from __future__ import annotations

from pydantic import Field, model_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.errors import FieldIssues


class ElasticSpec(SpecModel):
    """Elastic data parallelism: Ray Train grows or shrinks the worker group between these bounds."""

    min_workers: int = Field(ge=1, le=1024)
    """Fewest workers the job trains with; below it, the job waits for capacity."""
    max_workers: int = Field(ge=1, le=1024)
    """Most workers the job trains with; Ray's autoscaler and Kueue add workers up to it."""

    def world_sizes(self) -> range:
        return range(self.min_workers, self.max_workers + 1)


class ResourcesSpec(SpecModel):
    """Ray Train workers and their hardware."""

    workers: int = Field(default=1, ge=1, le=1024)
    """Data-parallel training workers (one per GPU on clusters); with `elastic`, the count to start with."""
    gpus_per_worker: int = Field(default=0, ge=0, le=8)
    """GPUs per worker; 0 trains on CPU (fp32, gloo)."""
    cpus_per_worker: float = Field(default=1.0, gt=0, le=256)
    """Logical CPUs reserved per worker."""
    node_pool: str | None = None
    """Node pool named in the Helm chart's values (GPU type, tolerations, node selector)."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the run on a cluster (the RayJob's activeDeadlineSeconds); the chart's default when
    omitted."""
    elastic: ElasticSpec | None = None
    """Opt-in elastic training between minWorkers and maxWorkers (omit for a fixed-size job).

    The global batch stays the same at every world size (gradient accumulation follows it), so the
    learning-rate schedule and the sample order do not change when workers come and go.
    """

    @model_validator(mode="after")
    def _workers_inside_elastic_range(self) -> ResourcesSpec:
        elastic = self.elastic
        if elastic is None:
            return self
        if elastic.min_workers > elastic.max_workers:
            raise FieldIssues(
                [
                    (
                        ("elastic", "maxWorkers"),
                        f"{elastic.max_workers} is below elastic.minWorkers ({elastic.min_workers})",
                        "make maxWorkers >= minWorkers",
                    )
                ]
            )
        if self.workers not in elastic.world_sizes():
            raise FieldIssues(
                [
                    (
                        ("workers",),
                        f"{self.workers} is outside elastic [{elastic.min_workers}, {elastic.max_workers}]",
                        "start with a worker count between elastic.minWorkers and elastic.maxWorkers",
                    )
                ]
            )
        return self

    def world_sizes(self) -> range:
        """Every number of workers the job may train with."""
        return self.elastic.world_sizes() if self.elastic else range(self.workers, self.workers + 1)
