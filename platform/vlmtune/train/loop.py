"""The one train loop, run by every Ray Train worker.

Setup is split into named steps; the loop itself reads top to bottom: take a step's micro-batches
from this rank's stream, step, report, checkpoint; export at the end. The world size is Ray
Train's (elastic jobs may restart at another one): the data position is the step, and gradient
accumulation follows the world size so the global batch stays the same.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Any

import ray.train
import ray.train.torch
import torch

from vlmtune import storage
from vlmtune.data.catalog import ShardTable
from vlmtune.data.errors import find_data_error
from vlmtune.data.mixture import rank_slice
from vlmtune.data.pipeline import build_rank_dataset
from vlmtune.data.preprocess import ProcessorConfig
from vlmtune.spec import TuningJob
from vlmtune.spec.layout import RunLayout
from vlmtune.train import checkpoint as ckpt
from vlmtune.train import deepspeed_internals, model_source, preemption
from vlmtune.train.deepspeed_config import deepspeed_config, resolve_precision
from vlmtune.train.ledger import SampleLedger, forget_after
from vlmtune.train.levers import levers_of, prepare_model
from vlmtune.train.metrics import (
    FlopsMeter,
    MetricsLog,
    MetricsWindow,
    SkipTotals,
    epoch_of,
    read_history,
)
from vlmtune.train.recompute import enable_checkpointing
from vlmtune.train.schedule import lr_multiplier
from vlmtune.train.sinks import MetricSink, metric_sinks
from vlmtune.train.step import collate, train_step
from vlmtune_model import save_export, set_trainable
from vlmtune_model.image import ImageSpec

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class LoopConfig:
    """Everything a worker needs, computed once by the driver."""

    job: dict  # the TuningJob document
    source: model_source.ModelSource
    total_steps: int
    output_uri: str  # absolute
    plan: Any  # ray.ObjectRef of the plan's ids (steps, micro-batches, size): each worker copies out its share
    shards: ShardTable  # where the planned ids live
    processor: ProcessorConfig
    resume_uri: str | None = None  # a killed job's newest checkpoint (Ray Train's own comes first)
    steps_per_epoch: int | None = None  # for the metrics' epoch


def train_loop_per_worker(config: dict) -> None:
    loop = config["loop"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    job = _at_world_size(TuningJob.model_validate(loop.job), world)
    spec = job.spec
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_worker)))
    precision = resolve_precision(spec)
    device, dtype = ray.train.torch.get_device(), DTYPES[precision]

    built = _setup_model(job, loop, device.type)
    engine = _setup_engine(job, built.model, loop.total_steps)
    levers = levers_of(spec.training)
    state = _restore(engine, rank, world, loop.resume_uri, spec.training.seed)
    batches = _batches(loop, rank, world, state.step, spec.training.micro_batch_size, built.tokenizer.pad_token_id)
    accumulation = spec.gradient_accumulation_steps
    window, ledger, totals = MetricsWindow(), SampleLedger(rank, world), SkipTotals(spec.data.max_skipped_fraction)
    if rank == 0 and spec.training.record_samples:
        forget_after(loop.output_uri, state.step)  # before step 1's collectives: no rank flushes before this
    preemption.catch_sigterm()
    watch = preemption.PreemptionWatch(device, config.get("stop") if rank == 0 else None)
    history = read_history(loop.output_uri, state.step) if rank == 0 and state.step else []
    metrics_log = MetricsLog(loop.output_uri, resumed_from=state.step) if rank == 0 else None
    board = config.get("progress") if rank == 0 else None
    meter = FlopsMeter.for_model(built.model, [p.value for p in spec.model.trainable], device, precision)

    with metric_sinks(job, loop.output_uri, state.step, enabled=rank == 0) as sinks:
        for step in range(state.step, loop.total_steps):
            waited = time.perf_counter()
            micro_batches = [next(batches) for _ in range(accumulation)]
            window.add_data_wait(time.perf_counter() - waited)
            window.add(train_step(engine, micro_batches, device, dtype, levers))
            state = ckpt.TrainState(step=step + 1, world_size=world)
            if spec.training.record_samples:
                ledger.add(state.step, [m.keys for m in micro_batches])
            last = state.step == loop.total_steps
            interrupt = watch.check()
            checkpoint_due = _checkpoint_due(spec, state.step, last) or interrupt.checkpoint
            # Step 1 is always logged so runs report the loss they started from.
            if state.step == 1 or state.step % spec.training.log_every_steps == 0 or checkpoint_due:
                metrics = _metrics(engine, window.reduce(device, meter), state, loop)
                totals.check(metrics)  # every rank sees the same reduced figures, so all stop together
                history.append(metrics)
                window = MetricsWindow()
                if checkpoint_due:
                    ledger.flush(loop.output_uri, state.step)
                _report(
                    engine,
                    metrics,
                    state,
                    rank,
                    loop,
                    metrics_log,
                    sinks,
                    checkpoint=checkpoint_due,
                    keep=spec.training.keep_checkpoints,
                )
            if interrupt.stop:
                watch.stop_after_checkpoint(state.step, interrupt)
                return  # the driver asked to stop (a preemption raises to restart instead): no export
            if board:
                board.post.remote(state.step, loop.total_steps, history[-1]["loss"] if history else None)
        _export(engine, built, job, loop, rank)


def _setup_model(job: TuningJob, loop: LoopConfig, device_type: str):
    built = model_source.build(loop.source, seed=job.spec.training.seed)
    set_trainable(built.model, [part.value for part in job.spec.model.trainable])
    if job.spec.training.gradient_checkpointing:
        enable_checkpointing(built.model, job.spec.training.checkpoint_layers)
    prepare_model(built.model, levers_of(job.spec.training), device_type)
    return built


def _setup_engine(job: TuningJob, model: torch.nn.Module, total_steps: int):
    import deepspeed  # imported on workers only: it probes accelerators on import

    training = job.spec.training
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=training.learning_rate, weight_decay=training.weight_decay, betas=(0.9, 0.999)
    )
    multiplier = lr_multiplier(training.lr_schedule, training.warmup_ratio, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    deepspeed_internals.skip_shm_comm()  # a C++ build, per new environment, of an op training never calls
    engine, *_ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(job.spec),
        dist_init_required=False,
    )
    deepspeed_internals.check(engine)  # a DeepSpeed without what resume and export need fails here, in one line
    return engine


def _at_world_size(job: TuningJob, world: int) -> TuningJob:
    """The job as this run trains it: `workers` is the world size Ray Train gave (an elastic job's may
    differ from the count it started with), so gradient accumulation and the DeepSpeed config follow."""
    if job.spec.resources.workers == world:
        return job
    doc = job.to_doc()
    doc["spec"]["resources"]["workers"] = world
    return TuningJob.model_validate(doc)


def _restore(engine, rank: int, world: int, resume_uri: str | None, seed: int) -> ckpt.TrainState:
    """Ray Train's checkpoint after an in-run restart; else the one the driver resumed the job from."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and resume_uri is not None:
        fs, path = storage.resolve(resume_uri)
        checkpoint = ray.train.Checkpoint(path=path, filesystem=fs)
    if checkpoint is None:
        return ckpt.TrainState(world_size=world)
    with checkpoint.as_directory() as folder:
        return ckpt.restore(engine, folder, rank, world, seed)


def _batches(loop: LoopConfig, rank: int, world: int, start_step: int, micro: int, pad_token_id: int):
    """This rank's micro-batches from `start_step` on: micro-batches rank, rank+world, ... of each step.

    The plan's ids are read zero-copy from the object store and only this rank's slice is kept; Ray
    Data then reads those rows from the shards, so a restart at any step and world size reads and
    preprocesses only what is left to train.
    """
    ids = rank_slice(ray.get(loop.plan), rank, world, start_step)
    dataset = build_rank_dataset(loop.shards, ids, loop.processor, batch_size=max(8, micro))
    image_spec = ImageSpec(size=loop.processor.image_size)
    # Every planned micro-batch is full, so batches of `micro` rows are exactly the plan's micro-batches.
    try:
        for batch in dataset.iter_batches(batch_size=micro, batch_format="numpy", drop_last=False, prefetch_batches=2):
            yield collate(batch, pad_token_id, image_spec)
    except Exception as err:
        # A damaged shard arrives wrapped by Ray Data; re-raised as itself it reaches the driver intact.
        found = find_data_error(err)
        if found is None:
            raise
        raise found from None


def _metrics(engine, reduced: dict, state: ckpt.TrainState, loop: LoopConfig) -> dict:
    grad_norm = engine.get_global_grad_norm()
    return {
        "step": state.step,
        "total_steps": loop.total_steps,  # each row carries it: the operator computes progress from one row
        "epoch": epoch_of(state.step, loop.steps_per_epoch),
        **reduced,
        "learning_rate": engine.get_lr()[0],
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
    }


def _checkpoint_due(spec, step: int, last: bool) -> bool:
    every = spec.training.checkpoint_every_steps
    return last or (every is not None and step % every == 0)


def _report(
    engine,
    metrics: dict,
    state: ckpt.TrainState,
    rank: int,
    loop: LoopConfig,
    metrics_log: MetricsLog | None,
    sinks: list[MetricSink],
    checkpoint: bool,
    keep: int,
) -> None:
    if metrics_log is not None:  # rank 0's
        metrics_log.append(metrics)
    for sink in sinks:  # rank 0's
        sink.write(metrics)
    if not checkpoint:
        ray.train.report(metrics)
        return
    ckpt.commit(engine, state, rank, metrics, loop.output_uri, keep)


def _export(engine, built, job: TuningJob, loop: LoopConfig, rank: int) -> None:
    """Hugging Face export to `<output>/model`; ZeRO-3 shards are gathered first (a collective)."""
    if job.spec.training.deepspeed.zero_stage == 3:
        state_dict = deepspeed_internals.consolidated_state_dict(engine)
    else:
        state_dict = engine.module.state_dict() if rank == 0 else None
    if rank != 0:
        return
    with tempfile.TemporaryDirectory(prefix="vlmtune-export-") as folder:
        save_export(built, {k: v.detach().to("cpu", torch.float32) for k, v in state_dict.items()}, folder)
        storage.upload_dir(folder, RunLayout(loop.output_uri).model)
