"""`plan_job`: a TuningJob -> memory, fit verdict, steps, tokens, FLOPs and GPU-hours on a GPU type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from vlmtune.plan.budget import DEFAULT_MFU, Budget, budget, sample_count
from vlmtune.plan.catalog import PlanError, resolve_shape
from vlmtune.plan.estimate import MemoryEstimate, estimate_memory
from vlmtune.plan.fit import Suggestion, suggest
from vlmtune.plan.gpus import GPUS, GpuType, gpu_type
from vlmtune.plan.memory import Setup
from vlmtune.plan.params import ModelSize, lora_parameters, model_size
from vlmtune.spec import TuningJob
from vlmtune.train.deepspeed_config import resolve_precision
from vlmtune_model.shapes import Shape


@dataclass(frozen=True)
class Plan:
    job: str
    gpu: GpuType
    shape: Shape
    size: ModelSize
    trainable: tuple[str, ...]
    setup: Setup
    memory: MemoryEstimate
    suggestion: Suggestion | None
    budget: Budget
    notes: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.gpu.memory_bytes

    def to_dict(self) -> dict:
        suggestion = None
        if self.suggestion is not None:
            suggestion = {
                "changes": [asdict(c) for c in self.suggestion.changes],
                "set": [c.as_override() for c in self.suggestion.changes],
                "per_gpu_bytes": self.suggestion.per_gpu_bytes,
            }
        return {
            "job": self.job,
            "fits": self.fits,
            "per_gpu_bytes": self.memory.total,
            "gpu": {"type": self.gpu.name, "memory_bytes": self.gpu.memory_bytes, "peak_flops": self.gpu.peak_flops},
            "breakdown": self.memory.breakdown(),
            "suggestion": suggestion,
            "model": {
                "shape": self.shape.name,
                "params": self.size.parts,
                "trainable": list(self.trainable),
                "trainable_params": self.size.trainable(self.trainable),
            },
            "setup": asdict(self.setup),
            **asdict(self.budget),
            "notes": list(self.notes),
        }


def gpu_for(job: TuningJob, requested: str | None) -> GpuType:
    """`requested` (--gpu), else the job's node pool when it is named after a GPU type.

    Raises:
        PlanError: neither names a known GPU type.
    """
    name, field = (requested, "--gpu") if requested else (job.spec.resources.node_pool, "spec.resources.nodePool")
    found = gpu_type(name) if name else None
    if found is None:
        problem = f"{name!r} is not a known GPU type" if name else "no GPU type given"
        raise PlanError(field, problem, f"pass --gpu one of: {', '.join(GPUS)}")
    return found


def setup_of(job: TuningJob) -> Setup:
    training, zero = job.spec.training, job.spec.training.deepspeed
    return Setup(
        ranks=job.spec.resources.workers,
        micro_batch=training.micro_batch_size,
        global_batch=training.global_batch_size,
        seq_len=training.max_length,
        precision=resolve_precision(job.spec),
        checkpointing=training.gradient_checkpointing,
        zero_stage=zero.zero_stage,
        offload_optimizer=zero.offload_optimizer,
        offload_params=zero.offload_params,
        checkpoint_layers=training.checkpoint_layers,
        chunked_loss=training.chunked_loss,
        offload_activations=training.offload_activations,
        pack_samples=training.pack_samples,
        attention=training.attention.value,
    )


def _check_checkpoint_layers(setup: Setup, shape: Shape) -> None:
    layers = shape.text["num_hidden_layers"]
    if setup.checkpoint_layers is not None and setup.checkpoint_layers > layers:
        raise PlanError(
            "spec.training.checkpointLayers",
            f"{setup.checkpoint_layers} is more than the model's {layers} decoder layers",
            f"lower it, or leave it out to checkpoint all {layers}",
        )


def plan_job(
    job: TuningJob,
    gpu: GpuType,
    *,
    jobs: Mapping[str, TuningJob] | None = None,
    samples: int | None = None,
    shape: str | None = None,
    mean_tokens: int | None = None,
    mfu: float = DEFAULT_MFU,
) -> Plan:
    """Plan `job` on `gpu`: nothing is downloaded, nothing is read but local config.json files.

    Args:
        jobs: the other jobs of the file set, by name (to size `from: {job: ...}` models).
        samples: training samples per epoch (else from the spec when it can tell).
        shape: a shape name overriding the spec's model.
        mean_tokens: mean tokens per sample for time estimates (default maxLength: an upper bound).
        mfu: model-FLOPs utilisation assumed for GPU-hours.

    Raises:
        PlanError: the model cannot be sized, or the DeepSpeed settings are impossible.
    """
    resolved = resolve_shape(job, jobs, shape)
    size = model_size(resolved).with_lora(_adapters(job, resolved))
    trainable = tuple(part.value for part in job.spec.model.trainable)
    setup = setup_of(job)
    _check_checkpoint_layers(setup, resolved)

    def per_gpu(candidate: Setup) -> int:
        return estimate_memory(resolved, size, trainable, candidate).total

    try:
        memory = estimate_memory(resolved, size, trainable, setup)
    except ValueError as err:
        raise PlanError("spec.training.deepspeed", str(err), "set zeroStage to one that supports it") from err
    fits = memory.total <= gpu.memory_bytes
    count, source = sample_count(job.spec.data, samples)
    training = job.spec.training
    tokens = mean_tokens or training.max_length
    costs = budget(
        resolved,
        samples=count,
        samples_source=source,
        epochs=training.epochs,
        global_batch=training.global_batch_size,
        max_steps=training.max_steps,
        tokens_per_sample=tokens,
        trainable=size.trained_parts(trainable),
        adapters=size.adapters,
        gpus=setup.ranks,
        peak_flops=gpu.peak_flops,
        mfu=mfu,
    )
    return Plan(
        job.name,
        gpu,
        resolved,
        size,
        trainable,
        setup,
        memory,
        None if fits else suggest(setup, per_gpu, gpu.memory_bytes),
        costs,
        tuple(_notes(job, setup, tokens) + _lever_notes(setup, memory)),
    )


def _adapters(job: TuningJob, shape: Shape) -> int:
    lora = job.spec.model.lora
    if lora is None:
        return 0
    try:
        return lora_parameters(shape.text, lora.rank, tuple(lora.target_modules))
    except ValueError as err:
        raise PlanError("spec.model.lora.targetModules", str(err), "name the language model's linear layers") from err


def _notes(job: TuningJob, setup: Setup, tokens: int) -> list[str]:
    notes = [f"memory is planned for every sample at maxLength {setup.seq_len} tokens (image tokens included)"]
    if tokens == setup.seq_len:
        notes.append(
            "tokens, FLOPs and hours are upper bounds (every sample at maxLength); "
            "pass --mean-tokens N for a closer figure"
        )
    gpus = job.spec.resources.gpus_per_worker
    if gpus == 0:
        notes.append("resources.gpusPerWorker is 0: the job trains on CPU; figures assume one GPU per worker")
    elif gpus > 1:
        notes.append(f"each Ray worker runs one DeepSpeed rank on one GPU: {gpus - 1} of its {gpus} GPUs stay idle")
    if setup.offload_optimizer or setup.offload_params:
        notes.append("offload moves memory to the host: CPU memory is not checked")
    return notes


def _lever_notes(setup: Setup, memory: MemoryEstimate) -> list[str]:
    notes = []
    if setup.offload_activations:
        host = memory.activations.offloaded / 2**30
        notes.append(
            f"offloadActivations keeps {host:.1f} GiB per worker in pinned host memory and copies it over "
            "the host link twice per micro-batch (CPU memory is not checked)"
        )
    if setup.dense_packed_mask:
        notes.append(
            "packSamples with attention: sdpa computes attention over the whole packed row under a dense "
            "mask; on GPUs attention: auto (flash_attention_2 or flex_attention) skips across samples"
        )
    return notes
