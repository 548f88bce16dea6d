"""Run job files on Ray: embedded on a laptop, or the cluster found through RAY_ADDRESS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from vlmtune import storage
from vlmtune.spec import EvalJob, Job


def execution_order(jobs: list[Job]) -> list[Job]:
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


def logical_cpus(jobs: list[Job]) -> int:
    """Logical CPUs for embedded Ray: the workers' share plus room for Ray Data.

    With logical CPUs equal to the physical cores, 1-CPU train workers take every slot and
    Ray Data's tasks never get scheduled; oversubscribing logically keeps the pipeline moving.
    """
    workers = max(job.spec.resources.workers * job.spec.resources.cpus_per_worker for job in jobs)
    return int(max(os.cpu_count() or 1, workers) + 2)


@contextmanager
def ray_session(jobs: list[Job], verbose: bool = False) -> Iterator[None]:
    """Use the Ray cluster in hand, the one RAY_ADDRESS names, or start an embedded one.

    Worker logs reach the console only with `verbose`; progress and errors travel as data.
    """
    if ray.is_initialized():
        yield
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=verbose)
    else:
        ray.init(num_cpus=logical_cpus(jobs), include_dashboard=False, log_to_driver=verbose,
                 configure_logging=True, logging_level="INFO" if verbose else "ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def run_jobs(jobs: list[Job], verbose: bool = False, show_progress: bool = True):
    """Run every job in dependency order; a job's `from: {job}` resolves to that job's exported model."""
    from vlmtune.eval import run_eval_job
    from vlmtune.train.trainer import run_tuning_job

    results, models = [], {}
    with ray_session(jobs, verbose):
        for job in execution_order(jobs):
            ref = job.spec.model.from_
            upstream = models.get(ref.job) if ref else None
            if ref and upstream is None:
                raise ValueError(f"{job.name}: spec.model.from.job {ref.job!r} was not run in this invocation")
            if isinstance(job, EvalJob):  # evaluates a model, exports none
                results.append(run_eval_job(job, upstream, show_progress=show_progress))
                continue
            result = run_tuning_job(job, upstream, show_progress=show_progress)
            models[job.name] = result.model_uri
            results.append(result)
    return results


def output_model_uri(job: Job) -> str:
    return storage.join(storage.absolute(job.spec.output.uri), "model")
