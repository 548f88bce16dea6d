"""Samples, steps, tokens, FLOPs and GPU-hours of a job."""

from __future__ import annotations

from dataclasses import dataclass

from vlmtune.spec import DataSpec
from vlmtune.train.flops import train_flops
from vlmtune_model.shapes import Shape

VISION_FLAN_INSTANCES = 1_664_261
"""Vision-Flan 1.0 training instances (187 tasks, at most 10k each), for the hint when data is unknown."""
DEFAULT_MFU = 0.40
"""Model-FLOPs utilisation assumed for time estimates: docs/benchmarks.md measured 37-47% for the
LLaVA-7B shape on one H200 (37% with full gradient checkpointing)."""


@dataclass(frozen=True)
class Budget:
    samples: int | None
    """Training samples per epoch (None when the plan cannot tell)."""
    samples_source: str
    steps: int | None
    tokens_per_sample: int
    tokens: int | None
    flops: float | None
    gpu_hours: float | None
    wall_hours: float | None
    mfu: float


def sample_count(data: DataSpec, explicit: int | None = None) -> tuple[int | None, str]:
    """Training samples per epoch and where that number came from.

    Only the generated demo suite has a size known before reading the data; for files, the plan
    trusts `--samples` or `maxSamples` (assuming the data holds at least that many).
    """
    if explicit is not None:
        return explicit, "--samples"
    if all(source.demo is not None for source in data.sources):
        from vlmtune.data.demo import (
            DEMO_TASKS,  # imports PIL and numpy: only for demo jobs
        )

        total = sum(
            len(source.demo.tasks or DEMO_TASKS)
            * min(source.demo.per_task, source.max_per_task or source.demo.per_task)
            for source in data.sources
        )
        if data.max_samples is not None and data.max_samples < total:
            return data.max_samples, f"spec.data.maxSamples (demo suite holds {total:,})"
        return total, "demo suite: perTask x tasks"
    if data.max_samples is not None:
        return data.max_samples, "spec.data.maxSamples (assuming the data holds that many)"
    hint = (
        f" (Vision-Flan 1.0 holds {VISION_FLAN_INSTANCES:,})"
        if any(source.format.value == "vision-flan" for source in data.sources)
        else ""
    )
    return None, f"sample count unknown: pass --samples N{hint}"


def train_steps(samples: int | None, epochs: int, global_batch: int, max_steps: int | None) -> int | None:
    """Optimizer steps as the trainer counts them (`data.mixture.plan_samples`): whole global batches
    per epoch (the partial last one is dropped), capped by maxSteps."""
    if samples is None:
        return max_steps
    steps = samples // global_batch * epochs
    return steps if max_steps is None else min(max_steps, steps)


def budget(
    shape: Shape,
    *,
    samples: int | None,
    samples_source: str,
    epochs: int,
    global_batch: int,
    max_steps: int | None,
    tokens_per_sample: int,
    trainable: tuple[str, ...],
    gpus: int,
    peak_flops: float,
    mfu: float = DEFAULT_MFU,
    adapters: int = 0,
) -> Budget:
    """Steps, tokens, model FLOPs and hours; FLOPs count no recomputation (MFU absorbs it) and
    assume every sample has an image. `trainable` are the parts whose own weights train; `adapters`
    LoRA weights in the language model."""
    steps = train_steps(samples, epochs, global_batch, max_steps)
    if steps is None:
        return Budget(samples, samples_source, None, tokens_per_sample, None, None, None, None, mfu)
    trained = steps * global_batch
    flops = trained * train_flops(shape, trainable, adapters).of_sample(tokens_per_sample)
    gpu_hours = flops / (peak_flops * mfu) / 3600
    return Budget(
        samples,
        samples_source,
        steps,
        tokens_per_sample,
        trained * tokens_per_sample,
        flops,
        gpu_hours,
        gpu_hours / gpus,
        mfu,
    )
