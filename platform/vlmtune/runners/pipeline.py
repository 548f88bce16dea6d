"""Plan and execute a set of jobs: experiments expanded, dependency order, finished jobs skipped, the rest resumed.

Every job leaves `<output>/job.json`: written as `Running` when it starts and as `Succeeded` with its artifacts
and headline metrics when it ends (`Interrupted` when stopped by a signal, `Failed` with the error's first line
otherwise; both run again, resuming, next time). The record carries the job's spec hash (its spec with upstream models
resolved, plus the upstream jobs' hashes, so a changed stage 1 invalidates stage 2 and its evaluation):

- same hash, `Succeeded`: the job is skipped and downstream jobs take its recorded model;
- same hash, `Running` (the run was interrupted), or no record: the job runs, and a TuningJob continues from
  the newest checkpoint in its output (`training.resume: auto`);
- another hash, or `--force`: the job runs from scratch (earlier checkpoints and metrics are cleared first).

Planning is pure (records in, steps out); only `run_pipeline` touches storage and Ray. Before it writes anything,
`run_pipeline` takes the lease of every output it will write (`runners.lease`): a second run of the same file is
refused, naming the run that holds it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from vlmtune import storage
from vlmtune.runners.lease import Lease
from vlmtune.spec import EvalJob, Experiment, Job, Resume, TuningJob, expand
from vlmtune.spec.layout import RunLayout
from vlmtune.train.stop import RunInterrupted, StopRequested, StopSwitch

RECORD_SCHEMA_VERSION = 1
Action = Literal["skip", "run", "restart"]


@dataclass(frozen=True)
class Step:
    """What the pipeline will do with one job, and why."""

    job: TuningJob | EvalJob
    spec_hash: str
    upstreams: dict[str, str]
    """Upstream job name -> its spec hash (part of this job's hash)."""
    action: Action
    reason: str


@dataclass(frozen=True)
class Outcome:
    """A job after the pipeline: its record, and the run's result when it ran (None when skipped)."""

    step: Step
    record: dict
    result: Any = None


@dataclass(frozen=True)
class PipelineResult:
    outcomes: list[Outcome]
    reports: dict[str, dict[str, str]]
    """Experiment name -> report files written into its run folder."""


# ------------------------------------------------------------------------------------------------ planning


def expand_jobs(jobs: Sequence[Job]) -> list[TuningJob | EvalJob]:
    """Experiments replaced by their generated jobs, in place; other jobs unchanged."""
    result: list[TuningJob | EvalJob] = []
    for job in jobs:
        result.extend(expand(job).jobs if isinstance(job, Experiment) else [job])
    names = [job.name for job in result]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"job names used twice once experiments are expanded: {', '.join(duplicates)}")
    return result


def execution_order(jobs: Sequence[Job]) -> list[Job]:
    """Jobs sorted so every job runs after the jobs it takes its model from (file order otherwise)."""
    by_name = {job.name: job for job in jobs}
    ordered, visiting, done = [], set(), set()

    def visit(job: Job) -> None:
        if job.name in done:
            return
        if job.name in visiting:
            raise ValueError(f"jobs form a cycle through {job.name!r}")
        visiting.add(job.name)
        for upstream in job.upstream_jobs():
            if upstream in by_name:
                visit(by_name[upstream])
        visiting.discard(job.name)
        done.add(job.name)
        ordered.append(job)

    for job in jobs:
        visit(job)
    return ordered


def model_uri(job: TuningJob) -> str:
    """Where a TuningJob exports its model (what its record will name)."""
    return RunLayout(output_uri(job)).model


def output_uri(job: Job) -> str:
    return storage.absolute(job.spec.output.uri)


def spec_hash(job: TuningJob | EvalJob, upstreams: Mapping[str, tuple[str, str]]) -> str:
    """sha256 of the job's spec with `from: {job}` resolved, and of its upstream jobs' hashes.

    Args:
        upstreams: upstream job name -> (its model URI, its spec hash).
    """
    spec = job.to_doc()["spec"]
    # The worker count does not change what is trained (the sample plan and global batch do not depend
    # on it, and checkpoints load at any world size): a job resumed with more or fewer workers continues.
    for field in ("workers", "elastic"):
        spec.get("resources", {}).pop(field, None)
    ref = spec["model"].pop("from", None)
    if ref is not None:
        spec["model"]["pretrained"] = upstreams[ref["job"]][0]
    content = {"kind": job.kind, "spec": spec, "upstreams": {name: h for name, (_, h) in sorted(upstreams.items())}}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def decide(record: Mapping | None, job_hash: str, force: bool) -> tuple[Action, str]:
    """Skip, run (resuming whatever checkpoint the output holds) or restart from scratch."""
    if force:
        return "restart", "--force: runs again from scratch"
    if record is None:
        return "run", "not run before"
    if record.get("specHash") != job_hash:
        return "restart", "the spec (or an upstream job's) changed since the recorded run: starts from scratch"
    if record.get("phase") == "Succeeded":
        return "skip", "finished earlier with the same spec (--force reruns it)"
    return "run", "interrupted earlier: continues from its newest checkpoint"


def job_steps(
    jobs: Sequence[TuningJob | EvalJob], records: Mapping[str, Mapping | None], force: bool = False
) -> list[Step]:
    """The steps for `jobs` (experiments already expanded), in dependency order.

    Args:
        records: job name -> its job.json document (None when it has none).

    Raises:
        ValueError: a job names an upstream job that is not in `jobs`, or jobs form a cycle.
    """
    steps: dict[str, Step] = {}
    by_name = {job.name: job for job in jobs}
    for job in execution_order(jobs):
        upstreams = {}
        for name in job.upstream_jobs():
            if name not in steps:
                raise ValueError(f"{job.name}: spec.model.from.job {name!r} is not among the jobs being run")
            upstreams[name] = (model_uri(by_name[name]), steps[name].spec_hash)
        job_hash = spec_hash(job, upstreams)
        action, reason = decide(records.get(job.name), job_hash, force)
        steps[job.name] = Step(job, job_hash, {name: h for name, (_, h) in upstreams.items()}, action, reason)
    return list(steps.values())


# ------------------------------------------------------------------------------------------------- records


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def running_record(step: Step, started: str) -> dict:
    job = step.job
    return {
        "schemaVersion": RECORD_SCHEMA_VERSION,
        "kind": job.kind,
        "name": job.name,
        "specHash": step.spec_hash,
        "upstreams": step.upstreams,
        "phase": "Running",
        "startedAt": started,
    }


def finished_record(running: Mapping, result: Any, finished: str) -> dict:
    """The record of a job that succeeded: artifact URIs and headline metrics from its result."""
    return {
        **running,
        "phase": "Succeeded",
        "finishedAt": finished,
        "artifacts": artifacts_of(result),
        "metrics": metrics_of(result),
    }


def ended_record(
    running: Mapping,
    phase: Literal["Interrupted", "Failed"],
    reason: str,
    finished: str,
    resume_step: int | None = None,
) -> dict:
    """The record of a job that stopped before the end: rerunning the file continues it from its newest checkpoint."""
    record = {**running, "phase": phase, "finishedAt": finished, "reason": reason}
    return record if resume_step is None else {**record, "resumeStep": resume_step}


def artifacts_of(result: Any) -> dict[str, str]:
    if hasattr(result, "model_uri"):  # TrainResult
        layout = RunLayout(result.output_uri)
        return {**layout.artifacts("TuningJob"), "dataReport": layout.data_report}
    return {name: uri for name, uri in result.files.items() if name in ("results", "markdown")}


def metrics_of(result: Any) -> dict[str, float]:
    if hasattr(result, "model_uri"):
        metrics = {"steps": result.steps, "samples": result.data_report.get("samples")}
        if result.history:
            metrics.update({"loss.first": result.history[0]["loss"], "loss.final": result.history[-1]["loss"]})
        return metrics
    return dict(result.headline)


def record_uri(job: Job) -> str:
    return RunLayout(output_uri(job)).record


def read_record(job: Job) -> dict | None:
    """The job's record, or None when there is none (or it is unreadable: then the job simply runs)."""
    uri = record_uri(job)
    if not storage.exists(uri):
        return None
    try:
        record = json.loads(storage.read_bytes(uri))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_json(uri: str, document: Mapping) -> None:
    storage.write_bytes(uri, (json.dumps(document, indent=2) + "\n").encode())


# ------------------------------------------------------------------------------------------------ execution


def run_pipeline(
    jobs: Sequence[Job],
    force: bool = False,
    verbose: bool = False,
    show_progress: bool = True,
    on_step: Callable[[Step], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    stop: StopSwitch | None = None,
) -> PipelineResult:
    """Run every job (experiments expanded) in dependency order, skipping finished ones, in one Ray session.

    Experiments get `experiment.json` in their run folder before anything runs and the report at the end.

    Args:
        on_step: called before each job, skipped or not.
        on_outcome: called after each job.
        stop: set on SIGTERM/SIGINT (`runners.interrupts`): training checkpoints at the next step and ends.

    Raises:
        LeaseHeld: another run writes one of the outputs.
        RunInterrupted, StopRequested: `stop` was set; the running job's record says `Interrupted`.
    """
    from vlmtune.report import write_report
    from vlmtune.runners.local import ray_session

    stop = stop or StopSwitch()
    expanded = expand_jobs(jobs)
    steps = job_steps(expanded, {job.name: read_record(job) for job in expanded}, force)
    experiments = [job for job in jobs if isinstance(job, Experiment)]
    to_run = [step.job for step in steps if step.action != "skip"]
    with ExitStack() as leases:
        for job in [*experiments, *to_run]:
            leases.enter_context(Lease(output_uri(job), job.name, on_lost=stop.abandon))
        for experiment in experiments:
            write_json(RunLayout(output_uri(experiment)).experiment, expand(experiment).manifest())
        # After the leases (a remote output's prepared data lives in it), before Ray: a missing shard or a bad
        # annotation file is one line.
        data = resolve_data(to_run)
        outcomes, models = [], {}
        # Nothing to run (a rerun of a finished pipeline) starts no Ray at all.
        with ray_session(to_run, verbose, stop) if to_run else nullcontext():
            for step in steps:
                if on_step:
                    on_step(step)
                outcome = _execute(step, models, show_progress, stop, data.get(step.job.name))
                models[step.job.name] = outcome.record.get("artifacts", {}).get("model")
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)
        reports = {experiment.name: write_report(output_uri(experiment)) for experiment in experiments}
    return PipelineResult(outcomes, reports)


def resolve_data(jobs: Sequence[TuningJob | EvalJob]) -> dict[str, list]:
    """Each TuningJob's sources as prepared datasets, their files checked (`data.resolve_sources`).

    Raises:
        DataError: a source is not prepared, damaged, or unreadable; the message names it and the fix.
    """
    from vlmtune.data.sources import resolve_sources

    return {
        job.name: resolve_sources(job.spec.data.sources, output_uri(job)) for job in jobs if isinstance(job, TuningJob)
    }


def _execute(
    step: Step, models: Mapping[str, str | None], show_progress: bool, stop: StopSwitch, data: list | None
) -> Outcome:
    from vlmtune.eval import run_eval_job
    from vlmtune.train.trainer import run_tuning_job

    job = step.job
    if step.action == "skip":
        return Outcome(step, read_record(job) or {})
    ref = job.spec.model.from_
    upstream = models.get(ref.job) if ref else None
    if ref and upstream is None:
        raise ValueError(f"{job.name}: upstream job {ref.job!r} recorded no model")
    stop.raise_if_requested()
    running = running_record(step, now_iso())
    write_json(record_uri(job), running)
    try:
        if isinstance(job, EvalJob):
            result = run_eval_job(job, upstream, show_progress=show_progress)
        else:
            result = run_tuning_job(
                _fresh(job) if step.action == "restart" else job,
                upstream,
                show_progress=show_progress,
                stop=stop,
                data=data,
            )
    except (RunInterrupted, StopRequested) as interrupted:
        resume_step = getattr(interrupted, "step", None)
        _record_end(job, ended_record(running, "Interrupted", str(interrupted), now_iso(), resume_step))
        raise
    except Exception as error:
        _record_end(job, ended_record(running, "Failed", error_line(error), now_iso()))
        raise
    record = finished_record(running, result, now_iso())
    write_json(record_uri(job), record)
    return Outcome(step, record, result)


def _record_end(job: Job, record: dict) -> None:
    """Write an interrupted or failed job's record; a store that fails now (a full disk) must not hide why the job
    ended, so that failure is only reported."""
    try:
        write_json(record_uri(job), record)
    except OSError as err:
        print(f"{job.name}: could not record phase {record['phase']} in {record_uri(job)}: {err}", file=sys.stderr)


def error_line(error: BaseException) -> str:
    """One line that says what went wrong: for Ray Train's worker-group errors, the failing rank's exception (its
    message ends the worker's traceback), else the error's first line."""
    failures = getattr(error, "worker_failures", None)
    if failures:
        rank, cause = sorted(failures.items())[0]
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        return f"rank {rank}: {lines[-1] if lines else type(cause).__name__}"[:500]
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:500]


def _fresh(job: TuningJob) -> TuningJob:
    """The job with `resume: never`: its output holds another spec's (or a forced) run, not a resume point."""
    training = job.spec.training.model_copy(update={"resume": Resume.never})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"training": training})})
