"""Driver side of a TuningJob: sample plan, Ray Train TorchTrainer (fixed or elastic), result."""

from __future__ import annotations

import json
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
from vlmtune.train import model_source
from vlmtune.train.metrics import read_history
from vlmtune.train.mlflow_log import require_mlflow
from vlmtune.train.loop import LoopConfig, train_loop_per_worker
from vlmtune.train.resume import CHECKPOINTS, Latest, clear_run, prepare_resume
from vlmtune.train.progress import ProgressBar, ProgressBoard

@dataclass(frozen=True)
class TrainResult:
    job: str
    output_uri: str
    model_uri: str
    steps: int
    history: list[dict]
    data_report: dict


def run_tuning_job(job: TuningJob, upstream_model_uri: str | None = None, show_progress: bool = False,
                   data: list[Selection] | None = None) -> TrainResult:
    """Train `job` on the current Ray cluster (embedded or remote); blocks until done.

    Args:
        data: the job's resolved sources, when the caller already checked them (`data.resolve_sources`).
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
    loop = LoopConfig(job=job.to_doc(), source=source, total_steps=plan.steps, output_uri=output_uri,
                      plan=ray.put(plan.ids), shards=catalog.table, processor=processor,
                      resume_uri=latest.uri if latest else None, steps_per_epoch=plan.steps_per_epoch)
    board = ProgressBoard.remote()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"loop": loop, "progress": board},
        scaling_config=_scaling_config(job),
        run_config=_run_config(job, output_uri),
    )
    try:
        with ProgressBar(board, job.name, plan.steps) if show_progress else nullcontext():
            trainer.fit()  # raises the run's error (Ray Train's WorkerGroupError holds each rank's)
    except Exception as err:
        found = find_data_error(err)  # a damaged shard is one line, not a trace from every rank
        if found is None:
            raise
        raise found from None
    history = read_history(output_uri)
    data_report = {"samples": plan.samples_per_epoch, "steps": plan.steps, "stepsPerEpoch": plan.steps_per_epoch,
                   "skippedRecords": catalog.skipped, "droppedPerEpoch": plan.dropped_per_epoch}
    storage.write_bytes(storage.join(output_uri, "data_report.json"), json.dumps(data_report, indent=2).encode())
    return TrainResult(job.name, output_uri, storage.join(output_uri, "model"), plan.steps, history, data_report)


def _resume_point(job: TuningJob, output_uri: str) -> Latest | None:
    """The checkpoint an earlier, interrupted run of this job left (None: start fresh)."""
    if job.spec.training.resume is Resume.never:
        clear_run(output_uri)
        return None
    return prepare_resume(output_uri)


def _check_read_skips(catalog: Catalog, limit: float) -> None:
    skipped = sum(catalog.skipped.values())
    total = skipped + catalog.size
    if total and skipped / total > limit:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(catalog.skipped.items()))
        raise ValueError(f"{skipped} of {total} records are unusable ({reasons}), more than "
                         f"spec.data.maxSkippedFraction = {limit:.1%}; first ones: {list(catalog.skip_examples[:3])}")


def _scaling_config(job: TuningJob) -> ray.train.ScalingConfig:
    """A fixed worker count, or (min, max) for an elastic job: Ray Train starts with what the cluster
    can place (at least min) and grows the group up to max as capacity appears."""
    resources = job.spec.resources
    elastic = resources.elastic
    workers = (elastic.min_workers, elastic.max_workers) if elastic else resources.workers
    return ray.train.ScalingConfig(num_workers=workers, use_gpu=resources.gpus_per_worker > 0,
                                   resources_per_worker=_worker_resources(job))


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
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.spec.training.keep_checkpoints),
        failure_config=ray.train.FailureConfig(max_failures=3),
    )

