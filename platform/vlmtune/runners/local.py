"""Run job files on Ray: embedded on a laptop, or the cluster found through RAY_ADDRESS."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from vlmtune.runners.interrupts import install
from vlmtune.spec import Job
from vlmtune.train.stop import StopSwitch


def logical_cpus(jobs: list[Job]) -> int:
    """Logical CPUs for embedded Ray: the workers' share plus room for Ray Data.

    With logical CPUs equal to the physical cores, 1-CPU train workers take every slot and
    Ray Data's tasks never get scheduled; oversubscribing logically keeps the pipeline moving.
    """
    workers = max(job.spec.resources.workers * job.spec.resources.cpus_per_worker for job in jobs)
    return int(max(os.cpu_count() or 1, workers) + 2)


@contextmanager
def ray_session(jobs: list[Job], verbose: bool = False, stop: StopSwitch | None = None) -> Iterator[None]:
    """Use the Ray cluster in hand, the one RAY_ADDRESS names, or start an embedded one.

    Worker logs reach the console only with `verbose`; progress and errors travel as data.

    Args:
        stop: SIGINT/SIGTERM go to it again once Ray is up (`ray.init` sets a SIGTERM handler that exits
            with a C++ stack dump when the signal lands inside Ray's code).
    """
    if ray.is_initialized():
        yield
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=verbose)
    else:
        ray.init(
            num_cpus=logical_cpus(jobs),
            include_dashboard=False,
            log_to_driver=verbose,
            configure_logging=True,
            logging_level="INFO" if verbose else "ERROR",
        )
    if stop is not None:
        install(stop)
    if not verbose:
        _spend_actor_restart_notice()
        # Ray Data logs every dataset's plan and progress on the driver, as Ray's own logs are kept to errors
        # here; --verbose shows them. It sets up its loggers when first imported, so import it first.
        import ray.data as _  # noqa: F401

        logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote(num_cpus=0, max_restarts=1)
class _Nothing:
    def __init__(self, _argument) -> None:
        pass


def _spend_actor_restart_notice() -> None:
    """Let Ray's core print its once-per-process actor-restart notice into /dev/null instead of the terminal.

    Every Ray Data actor pool (evaluation's model actors) makes the driver's core worker print an "E ...
    core_worker.cc" line about restartable actors with constructor arguments in the object store (Ray issue
    53727): Ray Data's own design, not a problem of the run. Ray prints it once per process, so a throwaway actor
    made the same way takes it while stderr points at /dev/null; nothing else about logging changes.
    """
    argument = ray.put(None)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            actor = _Nothing.remote(argument)  # the core worker logs while it submits: before this returns
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    ray.kill(actor)
