"""The `TuningJob` kind: one training stage of a vision-language model."""

from __future__ import annotations

import math
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
    suspend: bool | None = None
    """On a cluster, true pauses the job: its RayJob is deleted (its GPUs and queue quota freed) and no
    other is created; false (or no value) resumes it: training continues from its last checkpoint.
    The one spec field that may change after creation; local runs ignore it."""

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


MAX_EPOCHS = 1000
"""Most passes over the data a job without maxSteps may plan (the driver holds every planned step)."""
MAX_PLANNED_SAMPLES = 200_000_000
"""Most samples (maxSteps x globalBatchSize) a job may plan: about 120 epochs of Vision-Flan's 1.6M."""


def _consistency_problems(spec: TuningJobSpec) -> list[tuple[tuple[str, ...], str, str | None]]:
    problems = _length_problems(spec.training)
    training, resources = spec.training, spec.resources
    batch_problem = _global_batch_problem(training.global_batch_size, training.micro_batch_size, resources)
    if batch_problem:
        problems.append(batch_problem)
    if resources.elastic and training.deepspeed.zero_stage == 3:
        problems.append(
            (
                ("resources", "elastic"),
                "ZeRO-3 checkpoints cannot be loaded at another world size here, which an elastic job needs",
                "use training.deepspeed.zeroStage 0, 1 or 2, or remove resources.elastic",
            )
        )
    if training.precision in (Precision.fp16, Precision.bf16) and resources.gpus_per_worker == 0:
        problems.append(
            (
                ("training", "precision"),
                f"{training.precision.value} training needs GPUs but resources.gpusPerWorker is 0",
                "use precision: auto (fp32 on CPU) or set resources.gpusPerWorker",
            )
        )
    if training.deepspeed.zero_stage == 3 and training.deepspeed.offload_params and resources.gpus_per_worker == 0:
        problems.append(
            (
                ("training", "deepspeed", "offloadParams"),
                "parameter offload moves GPU memory to the CPU; there are no GPUs here",
                "remove offloadParams or set resources.gpusPerWorker",
            )
        )
    return problems


def _length_problems(training: TrainingSpec) -> list[tuple[tuple[str, ...], str, str | None]]:
    """A run length the driver could not plan: its plan holds every step's sample ids in memory."""
    if training.max_steps is None and training.epochs > MAX_EPOCHS:
        return [
            (
                ("training", "epochs"),
                f"{training.epochs} passes over the data without maxSteps is more than "
                f"the {MAX_EPOCHS} a plan may hold",
                f"set training.maxSteps, or at most {MAX_EPOCHS} epochs",
            )
        ]
    planned = (training.max_steps or 0) * training.global_batch_size
    if planned > MAX_PLANNED_SAMPLES:
        return [
            (
                ("training", "maxSteps"),
                f"{training.max_steps} steps x globalBatchSize {training.global_batch_size}"
                f" = {planned} samples, more than the {MAX_PLANNED_SAMPLES} a plan may hold",
                f"use at most {MAX_PLANNED_SAMPLES // training.global_batch_size} steps",
            )
        ]
    return []


def _global_batch_problem(global_batch: int, micro: int, resources) -> tuple | None:
    """The global batch must split into whole micro-batches on every rank at every world size the job may
    have (elastic jobs keep the global batch and recompute gradient accumulation per world size)."""
    failing = [world for world in resources.world_sizes() if global_batch % (world * micro)]
    if not failing:
        return None
    if resources.elastic is None:
        per_step = resources.workers * micro
        lower = max(per_step, global_batch // per_step * per_step)
        return (
            ("training", "globalBatchSize"),
            f"{global_batch} is not divisible by workers x microBatchSize = {resources.workers} x {micro} = {per_step}",
            f"use a multiple of {per_step} (e.g. {lower} or {lower + per_step}), or change workers/microBatchSize",
        )
    elastic = resources.elastic
    every = math.lcm(*(world * micro for world in resources.world_sizes()))
    suggestion = max(every, -(-global_batch // every) * every)
    shown = ", ".join(str(world) for world in failing[:5]) + (", ..." if len(failing) > 5 else "")
    return (
        ("training", "globalBatchSize"),
        f"{global_batch} is not divisible by W x microBatchSize ({micro}) for W = {shown}; an elastic job "
        f"may train with any W in [{elastic.min_workers}, {elastic.max_workers}]",
        f"use a multiple of {every} (lcm of W x microBatchSize over that range, e.g. {suggestion}), "
        "or narrow resources.elastic / change microBatchSize",
    )


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
