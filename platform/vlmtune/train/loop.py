"""The one train loop, run by every Ray Train worker.

Setup is split into named steps; the loop itself reads top to bottom: take a step's micro-batches
from this rank's stream, step, report, checkpoint; export at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass

import ray.train
import ray.train.torch
import torch

from vlmtune import storage
from vlmtune.data.pipeline import rank_dataset_name
from vlmtune.spec import TuningJob
from vlmtune.train import checkpoint as ckpt
from vlmtune.train import model_source
from vlmtune.train.deepspeed_config import deepspeed_config, resolve_precision
from vlmtune.train.ledger import SampleLedger
from vlmtune.train.metrics import MetricsWindow, SkipTotals, history_uri, read_history, to_jsonl
from vlmtune.train.schedule import lr_multiplier
from vlmtune.train.step import collate, train_step
from vlmtune_model import save_export, set_trainable

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class LoopConfig:
    """Everything a worker needs, computed once by the driver."""

    job: dict  # the TuningJob document
    source: model_source.ModelSource
    total_steps: int
    output_uri: str  # absolute
    stream_offsets: tuple[int, ...]  # samples the driver already cut from the front of each rank's stream
    resume_uri: str | None = None  # the checkpoint those streams were cut at (a killed job's newest)


def train_loop_per_worker(config: dict) -> None:
    loop = config["loop"]
    job = TuningJob.model_validate(loop.job)
    spec = job.spec
    rank = ray.train.get_context().get_world_rank()
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_worker)))
    device, dtype = ray.train.torch.get_device(), DTYPES[resolve_precision(spec)]

    built = _setup_model(job, loop)
    engine = _setup_engine(job, built.model, loop.total_steps)
    state = _restore(engine, rank, loop.resume_uri)
    batches = _batches(job, rank, state.consumed - loop.stream_offsets[rank], built.tokenizer.pad_token_id)
    accumulation = spec.gradient_accumulation_steps
    window, ledger, totals = MetricsWindow(), SampleLedger(), SkipTotals(spec.data.max_skipped_fraction)
    history = read_history(loop.output_uri, state.step) if rank == 0 and state.step else []
    board = config.get("progress") if rank == 0 else None

    for step in range(state.step, loop.total_steps):
        micro_batches = [next(batches) for _ in range(accumulation)]
        window.add(train_step(engine, micro_batches, device, dtype))
        state = ckpt.TrainState(step=step + 1, consumed=state.consumed + sum(m.samples for m in micro_batches))
        if spec.training.record_samples:
            ledger.add(state.step, [key for m in micro_batches for key in m.keys])
        last = state.step == loop.total_steps
        checkpoint_due = _checkpoint_due(spec, state.step, last)
        # Step 1 is always logged so runs report the loss they started from.
        if state.step == 1 or state.step % spec.training.log_every_steps == 0 or checkpoint_due:
            metrics = _metrics(engine, window.reduce(device), state)
            totals.check(metrics)  # every rank sees the same reduced figures, so all stop together
            history.append(metrics)
            window = MetricsWindow()
            if checkpoint_due:
                ledger.flush(loop.output_uri, rank, state.step)
            _report(engine, metrics, state, rank, loop, history, checkpoint=checkpoint_due)
        if board:
            board.post.remote(state.step, loop.total_steps, history[-1]["loss"] if history else None)
    _export(engine, built, job, loop, rank)


def _setup_model(job: TuningJob, loop: LoopConfig):
    built = model_source.build(loop.source, seed=job.spec.training.seed)
    set_trainable(built.model, [part.value for part in job.spec.model.trainable])
    if job.spec.training.gradient_checkpointing:
        built.model.gradient_checkpointing_enable()
    return built


def _setup_engine(job: TuningJob, model: torch.nn.Module, total_steps: int):
    import deepspeed  # imported on workers only: it probes accelerators on import

    training = job.spec.training
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay,
                                  betas=(0.9, 0.999))
    multiplier = lr_multiplier(training.lr_schedule, training.warmup_ratio, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(job.spec),
        dist_init_required=False,
    )
    return engine


def _restore(engine, rank: int, resume_uri: str | None) -> ckpt.TrainState:
    """Ray Train's checkpoint after an in-run restart; else the one the driver resumed the job from."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and resume_uri is not None:
        fs, path = storage.resolve(resume_uri)
        checkpoint = ray.train.Checkpoint(path=path, filesystem=fs)
    if checkpoint is None:
        return ckpt.TrainState()
    with checkpoint.as_directory() as folder:
        return ckpt.restore(engine, folder, rank)


def _batches(job: TuningJob, rank: int, skip: int, pad_token_id: int):
    """This rank's micro-batches, after skipping `skip` samples of its (possibly already cut) stream.

    Skipping happens only when workers restart inside one run (Ray Train's FailureConfig); a new
    run of a killed job gets streams the driver already cut at the checkpoint.
    """
    if skip < 0:
        raise RuntimeError(f"rank {rank}: the restored checkpoint is older than the stream the driver prepared")
    micro = job.spec.training.micro_batch_size
    shard = ray.train.get_dataset_shard(rank_dataset_name(rank))
    for batch in shard.iter_batches(batch_size=micro, batch_format="numpy", drop_last=False, prefetch_batches=2):
        if skip >= len(batch["key"]):
            skip -= len(batch["key"])
            continue
        if skip:
            batch = {name: values[skip:] for name, values in batch.items()}
            skip = 0
        yield collate(batch, pad_token_id)


def _metrics(engine, reduced: dict, state: ckpt.TrainState) -> dict:
    grad_norm = engine.get_global_grad_norm()
    return {
        "step": state.step,
        **reduced,
        "learning_rate": engine.get_lr()[0],
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
    }


def _checkpoint_due(spec, step: int, last: bool) -> bool:
    every = spec.training.checkpoint_every_steps
    return last or (every is not None and step % every == 0)


def _report(engine, metrics: dict, state: ckpt.TrainState, rank: int, loop: LoopConfig, history: list[dict],
            checkpoint: bool) -> None:
    if rank == 0:
        storage.write_bytes(history_uri(loop.output_uri), to_jsonl(history))
    if not checkpoint:
        ray.train.report(metrics)
        return
    folder = ckpt.save(engine, state, rank)
    try:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                         checkpoint_dir_name=f"checkpoint-{state.step:06d}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _export(engine, built, job: TuningJob, loop: LoopConfig, rank: int) -> None:
    """Hugging Face export to `<output>/model`; ZeRO-3 shards are gathered first (a collective)."""
    if job.spec.training.deepspeed.zero_stage == 3:
        state_dict = engine._zero3_consolidated_16bit_state_dict()
    else:
        state_dict = engine.module.state_dict() if rank == 0 else None
    if rank != 0:
        return
    with tempfile.TemporaryDirectory(prefix="vlmtune-export-") as folder:
        save_export(built, {k: v.detach().to("cpu", torch.float32) for k, v in state_dict.items()}, folder)
        storage.upload_dir(folder, storage.join(loop.output_uri, "model"))
