"""Driver side of a TuningJob: sample plan, Ray Train TorchTrainer (fixed or elastic), result."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import dataclass

import ray
import ray.train
from ray.train.torch import TorchTrainer

from vlmtune import storage
from vlmtune.data.catalog import Catalog, Selection, build_catalog
from vlmtune.data.errors import find_data_error
from vlmtune.data.mixture import job_plan
from vlmtune.data.sources import resolve_sources
from vlmtune.spec import Resume, TuningJob
from vlmtune.spec.layout import CHECKPOINTS, RunLayout
from vlmtune.spec.tuning import MAX_PLANNED_SAMPLES
from vlmtune.train import model_source
from vlmtune.train.loop import LoopConfig, train_loop_per_worker
from vlmtune.train.metrics import read_history
from vlmtune.train.mlflow_log import require_mlflow
from vlmtune.train.progress import ProgressBar, ProgressBoard
from vlmtune.train.resume import Latest, clear_run, latest_checkpoint, prepare_resume
from vlmtune.train.stop import Poll, RunFailed, RunInterrupted, StopSwitch, fit_until_stopped, hopeless, stop_board


@dataclass(frozen=True)
class TrainResult:
    job: str
    output_uri: str
    model_uri: str
    steps: int
    history: list[dict]
    data_report: dict


def run_tuning_job(
    job: TuningJob,
    upstream_model_uri: str | None = None,
    show_progress: bool = False,
    data: list[Selection] | None = None,
    stop: StopSwitch | None = None,
) -> TrainResult:
    """Train `job` on the current Ray cluster (embedded or remote); blocks until done.

    Args:
        data: the job's resolved sources, when the caller already checked them (`data.resolve_sources`).
        stop: set by the driver's signal handler: the workers checkpoint at the next step boundary and end.

    Raises:
        RunInterrupted: `stop` was set during training; names the step to resume from.
        RunFailed: a worker hit an error restarting cannot heal (a full disk, a read-only output).
        DataError: a shard is damaged or unreadable; one line naming it.
    """
    spec = job.spec
    if spec.output.mlflow is not None:
        require_mlflow()  # here, not first in a Ray worker: the error names the extra to install
    output_uri = storage.absolute(spec.output.uri)
    catalog = build_catalog(data if data is not None else resolve_sources(spec.data.sources, output_uri))
    _check_read_skips(catalog, spec.data.max_skipped_fraction)
    source = model_source.model_source(spec.model, upstream_model_uri)
    processor = model_source.processor_config(source, spec.training.max_length)
    plan = job_plan(spec, catalog, processor.image_tokens)
    latest = _resume_point(job, output_uri)
    # Workers build their Ray Data streams from the plan at the step they start from, whatever their
    # number (fresh run, restart after a failure, elastic resize, resumed job): one code path. The plan
    # is one int64 array in the object store; each worker copies out its own slice.
    loop = LoopConfig(
        job=job.to_doc(),
        source=source,
        total_steps=plan.steps,
        output_uri=output_uri,
        plan=ray.put(plan.ids),
        shards=catalog.table,
        processor=processor,
        resume_uri=latest.uri if latest else None,
        steps_per_epoch=plan.steps_per_epoch,
    )
    board, stops = ProgressBoard.remote(), stop_board()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"loop": loop, "progress": board, "stop": stops},
        scaling_config=_scaling_config(job),
        run_config=_run_config(job, output_uri),
    )
    try:
        with ProgressBar(board, job.name, plan.steps) if show_progress else nullcontext():
            result = _fit(trainer, job, output_uri, stop or StopSwitch(), stops)
    except Exception as err:
        found = find_data_error(err)  # a damaged shard is one line, not a trace from every rank
        if found is None:
            raise
        raise found from None
    if result.error:
        found = find_data_error(result.error)
        raise found or result.error
    history = read_history(output_uri)
    data_report = {
        "samples": plan.samples_per_epoch,
        "steps": plan.steps,
        "stepsPerEpoch": plan.steps_per_epoch,
        "skippedRecords": catalog.skipped,
        "droppedPerEpoch": plan.dropped_per_epoch,
    }
    layout = RunLayout(output_uri)
    storage.write_bytes(layout.data_report, json.dumps(data_report, indent=2).encode())
    return TrainResult(job.name, output_uri, layout.model, plan.steps, history, data_report)


def _fit(trainer: TorchTrainer, job: TuningJob, output_uri: str, stop: StopSwitch, stops):
    """trainer.fit(), ended early at a step boundary when `stop` is set.

    Raises:
        RunInterrupted: the workers stopped on request (or did not within the grace period).
        RunFailed: a worker hit an error restarting cannot heal (a full disk).
    """
    stop.raise_if_requested()
    outcome = fit_until_stopped(trainer.fit, stop, stops, failure=Poll(stops.failure))
    if outcome.failure:
        raise RunFailed(job.name, outcome.failure)
    stopped_at = None if outcome.gave_up else ray.get(stops.stopped_at.remote())
    if outcome.gave_up or stopped_at is not None:
        latest = stopped_at if stopped_at is not None else getattr(latest_checkpoint(output_uri), "step", None)
        raise RunInterrupted(job.name, stop.reason or "a stop request", latest, checkpointed=not outcome.gave_up)
    return outcome.result


def _train_loop(config: dict) -> None:
    """The train loop, telling the driver about an error restarting cannot heal (a full disk) so that the run
    ends at once instead of Ray Train replaying steps into it `max_failures` times."""
    try:
        train_loop_per_worker(config)
    except Exception as error:
        reason = hopeless(error)
        if reason is not None:
            ray.get(config["stop"].fail.remote(reason))
        raise


def _resume_point(job: TuningJob, output_uri: str) -> Latest | None:
    """The checkpoint an earlier, interrupted run of this job left (None: start fresh); a warning per newer
    checkpoint that did not verify."""
    if job.spec.training.resume is Resume.never:
        clear_run(output_uri)
        return None
    point = prepare_resume(output_uri)
    for line in point.warnings():
        print(f"{job.name}: warning: {line}", file=sys.stderr, flush=True)
    return point.latest


def _check_plan_size(records: int, spec) -> None:
    """Refuse a plan the driver cannot hold (every planned sample id is in its memory), before building it."""
    per_epoch = min(records, spec.data.max_samples or records)
    planned = per_epoch * spec.training.epochs
    if spec.training.max_steps is not None:
        planned = min(planned, spec.training.max_steps * spec.training.global_batch_size)
    if planned > MAX_PLANNED_SAMPLES:
        raise ValueError(
            f"spec.training.epochs: {spec.training.epochs} epochs of {per_epoch} samples plan {planned} "
            f"samples, more than the {MAX_PLANNED_SAMPLES} a plan may hold; set training.maxSteps"
        )


def _check_read_skips(catalog: Catalog, limit: float) -> None:
    skipped = sum(catalog.skipped.values())
    total = skipped + catalog.size
    if total and skipped / total > limit:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(catalog.skipped.items()))
        raise ValueError(
            f"{skipped} of {total} records are unusable ({reasons}), more than "
            f"spec.data.maxSkippedFraction = {limit:.1%}; first ones: {list(catalog.skip_examples[:3])}"
        )


def _scaling_config(job: TuningJob) -> ray.train.ScalingConfig:
    """A fixed worker count, or (min, max) for an elastic job: Ray Train starts with what the cluster
    can place (at least min) and grows the group up to max as capacity appears."""
    resources = job.spec.resources
    elastic = resources.elastic
    workers = (elastic.min_workers, elastic.max_workers) if elastic else resources.workers
    return ray.train.ScalingConfig(
        num_workers=workers, use_gpu=resources.gpus_per_worker > 0, resources_per_worker=_worker_resources(job)
    )


def _worker_resources(job: TuningJob) -> dict:
    resources = {"CPU": job.spec.resources.cpus_per_worker}
    if job.spec.resources.gpus_per_worker:
        resources["GPU"] = job.spec.resources.gpus_per_worker
    return resources


def _run_config(job: TuningJob, output_uri: str) -> ray.train.RunConfig:
    fs, path = storage.resolve(output_uri)
    return ray.train.RunConfig(
        name=CHECKPOINTS,
        storage_path=path,
        storage_filesystem=fs,
        # Retention is the loop's (`resume.prune`): Ray Train would delete older checkpoints as soon as a new one
        # is uploaded, before its completion record says it counts, and forgets those of earlier runs.
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
        failure_config=ray.train.FailureConfig(max_failures=3),
    )
