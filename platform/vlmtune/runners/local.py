"""Run job files on Ray: embedded on a laptop, or the cluster found through RAY_ADDRESS."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from vlmtune.runners.pipeline import execution_order, run_pipeline
from vlmtune.spec import Job

__all__ = ["execution_order", "logical_cpus", "ray_session", "run_jobs"]


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
    with _quiet_core_logs(enabled=not verbose):
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=verbose)
        else:
            ray.init(num_cpus=logical_cpus(jobs), include_dashboard=False, log_to_driver=verbose,
                     configure_logging=True, logging_level="INFO" if verbose else "ERROR")
    if not verbose:
        # Ray Data logs every dataset's plan and progress on the driver, as Ray's own logs are kept to errors
        # here; --verbose shows them. It sets up its loggers when first imported, so import it first.
        import ray.data as _  # noqa: F401

        logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _quiet_core_logs(enabled: bool) -> Iterator[None]:
    """Keep Ray's C++ core from printing its ERROR lines on the driver's terminal while Ray starts.

    Every Ray Data actor pool (evaluation's model actors) makes the driver's core worker print an "E ...
    core_worker.cc" line about restartable actors with constructor arguments in the object store (Ray issue
    53727), which is Ray Data's own design, not a problem of the run. Ray reads its C++ log level from the
    environment when its processes start, so the setting covers those started here (and only their log level:
    Python errors and job failures still surface); `--verbose`, or RAY_BACKEND_LOG_LEVEL set by the user, keeps
    Ray's own level.
    """
    if not enabled or "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    try:
        yield
    finally:
        os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)


def run_jobs(jobs: list[Job], verbose: bool = False, show_progress: bool = True, force: bool = False):
    """Run every job in dependency order (experiments expanded), skipping finished ones; see `runners.pipeline`.

    Returns:
        The TrainResult/EvalResult of every job that ran (skipped jobs have none).
    """
    outcomes = run_pipeline(jobs, force=force, verbose=verbose, show_progress=show_progress).outcomes
    return [outcome.result for outcome in outcomes if outcome.result is not None]
