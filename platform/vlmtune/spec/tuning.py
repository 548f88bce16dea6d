"""The `TuningJob` kind: one training stage of a vision-language model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlmtune.spec.base import API_VERSION, JobKind, SpecModel
from vlmtune.spec.data import DataSpec
from vlmtune.spec.errors import FieldIssues
from vlmtune.spec.metadata import ObjectMeta
from vlmtune.spec.model import ModelSpec
from vlmtune.spec.output import OutputSpec
from vlmtune.spec.resources import ResourcesSpec
from vlmtune.spec.training import Precision, TrainingSpec


class TuningJobSpec(SpecModel):
    """What to train, on what data, how, where, and where the results go."""

    model: ModelSpec
    """The model and its trainable parts."""
    data: DataSpec
    """Training data and task mixture."""
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """Optimisation settings."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Workers and hardware."""
    output: OutputSpec
    """Where checkpoints, metrics and the exported model go."""

    @model_validator(mode="after")
    def _consistent(self) -> TuningJobSpec:
        problems = _consistency_problems(self)
        if problems:
            raise FieldIssues(problems)
        return self

    @property
    def gradient_accumulation_steps(self) -> int:
        per_step = self.resources.workers * self.training.micro_batch_size
        return self.training.global_batch_size // per_step


def _consistency_problems(spec: TuningJobSpec) -> list[tuple[tuple[str, ...], str, str | None]]:
    problems = []
    training, resources = spec.training, spec.resources
    per_step = resources.workers * training.micro_batch_size
    if training.global_batch_size % per_step:
        lower = max(per_step, training.global_batch_size // per_step * per_step)
        problems.append((
            ("training", "globalBatchSize"),
            f"{training.global_batch_size} is not divisible by workers x microBatchSize = "
            f"{resources.workers} x {training.micro_batch_size} = {per_step}",
            f"use a multiple of {per_step} (e.g. {lower} or {lower + per_step}), or change workers/microBatchSize",
        ))
    if training.precision in (Precision.fp16, Precision.bf16) and resources.gpus_per_worker == 0:
        problems.append((
            ("training", "precision"),
            f"{training.precision.value} training needs GPUs but resources.gpusPerWorker is 0",
            "use precision: auto (fp32 on CPU) or set resources.gpusPerWorker",
        ))
    if training.deepspeed.zero_stage == 3 and training.deepspeed.offload_params and resources.gpus_per_worker == 0:
        problems.append((
            ("training", "deepspeed", "offloadParams"),
            "parameter offload moves GPU memory to the CPU; there are no GPUs here",
            "remove offloadParams or set resources.gpusPerWorker",
        ))
    return problems


class TuningJob(JobKind, SpecModel):
    """A training stage, written as a Kubernetes custom resource."""

    api_version: Literal["vlmtune.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    """Always vlmtune.dev/v1alpha1."""
    kind: Literal["TuningJob"] = "TuningJob"
    """Always TuningJob."""
    metadata: ObjectMeta
    """Name, namespace and labels (the Kueue queue label picks the tenant queue)."""
    spec: TuningJobSpec
    """The job itself."""
