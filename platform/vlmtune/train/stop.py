"""A clean stop on request (SIGTERM or Ctrl-C on the driver): checkpoint at the next step boundary, then end.

The driver's signal handler only flips a `StopSwitch`. While Ray Train runs, `fit_until_stopped` forwards the
request to a `StopBoard` actor; rank 0 polls it without blocking at every step, every rank agrees through the
per-step flag all-reduce (`preemption`), all save a checkpoint, and the loop returns without exporting. The
driver then raises `RunInterrupted` naming the step to resume from. If the workers have not stopped within
the grace period (a step or an upload that hangs), the driver gives up waiting; the last verified checkpoint
still stands. Outside training (planning, reading data, evaluation) there is no step boundary to wait for, so
the handler raises `StopRequested` at once.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

GRACE_S = 300.0
"""How long the driver waits for the workers' checkpoint after a stop request (a pod's
terminationGracePeriodSeconds should be longer)."""


class StopRequested(BaseException):
    """A stop signal arrived where no checkpoint can be made (or a second one arrived). A BaseException, like
    KeyboardInterrupt, so that `except Exception` blocks on the way up do not swallow it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RunInterrupted(RuntimeError):
    """A run stopped on request. `step` is the newest checkpoint the job can resume from (None: none)."""

    def __init__(self, job: str, reason: str, step: int | None, checkpointed: bool):
        self.job, self.reason, self.step, self.checkpointed = job, reason, step, checkpointed
        if checkpointed:
            super().__init__(f"{job}: stopped by {reason} after checkpointing step {step}")
        else:
            where = f"its checkpoint of step {step}" if step is not None else "the start (no checkpoint yet)"
            super().__init__(f"{job}: stopped by {reason} before the workers checkpointed; it resumes from {where}")

    def __reduce__(self):
        return (RunInterrupted, (self.job, self.reason, self.step, self.checkpointed))


class RunFailed(RuntimeError):
    """A run ended on an error restarting cannot heal; the message is one line and says what to do."""

    def __init__(self, job: str, reason: str):
        self.job, self.reason = job, reason
        super().__init__(
            f"{job}: {reason}; free space (or fix the output's permissions), then rerun to resume from "
            "the newest complete checkpoint"
        )

    def __reduce__(self):
        return (RunFailed, (self.job, self.reason))


class StopSwitch:
    """The driver's stop flag: set by a signal handler, read by the code waiting on training."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.immediate = False
        self._graceful = 0

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def graceful(self) -> bool:
        """Whether a stop can wait for the next step boundary now (training is running)."""
        return self._graceful > 0

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def abandon(self, reason: str) -> None:
        """Stop without waiting for a checkpoint (the output is no longer this run's to write)."""
        self.immediate = True
        self.request(reason)

    @contextmanager
    def waiting_for_a_step(self) -> Iterator[None]:
        """Within it, a stop request waits for the workers' next checkpoint instead of stopping at once."""
        self._graceful += 1
        try:
            yield
        finally:
            self._graceful -= 1

    def raise_if_requested(self) -> None:
        if self.requested:
            raise StopRequested(self.reason or "a stop request")


def stop_board():
    """A new StopBoard actor (Ray imported here: the CLI imports this module before Ray is needed)."""
    import ray

    return ray.remote(num_cpus=0)(StopBoard).remote()


class StopBoard:
    """Carries a stop request from the driver to rank 0, and the step rank 0 stopped at back (a Ray actor)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.stopped_step: int | None = None
        self.hopeless: str | None = None

    def request(self, reason: str) -> None:
        self.reason = reason

    def poll(self) -> str | None:
        return self.reason

    def fail(self, reason: str) -> None:
        """A worker hit an error restarting cannot heal: the driver ends the run instead of letting it retry."""
        self.hopeless = self.hopeless or reason

    def failure(self) -> str | None:
        return self.hopeless

    def stopped(self, step: int) -> None:
        self.stopped_step = step

    def stopped_at(self) -> int | None:
        return self.stopped_step


class Poll:
    """An actor method asked without waiting: one call in flight at a time; its first non-None answer sticks."""

    def __init__(self, method) -> None:
        self.method, self.pending, self.answer = method, None, None

    def __call__(self) -> Any:
        import ray

        if self.answer is None:
            if self.pending is None:
                self.pending = self.method.remote()
            ready, _ = ray.wait([self.pending], timeout=0)
            if ready:
                self.answer, self.pending = ray.get(self.pending), None
        return self.answer


def hopeless(error: BaseException) -> str | None:
    """A one-line description of an error that restarting the workers cannot heal (a full disk or quota, a
    read-only output), or None. Ray Train would replay steps into it `max_failures` times."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and (error.errno in _HOPELESS or "No space left on device" in str(error)):
            return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        error = error.__cause__ or error.__context__
    return None


_HOPELESS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


@dataclass(frozen=True)
class FitOutcome:
    result: Any = None
    gave_up: bool = False
    """A stop was requested and the workers did not end within the grace period (or the lease was lost)."""
    failure: str | None = None
    """A worker reported an error restarting cannot heal; the run was ended."""


def fit_until_stopped(
    fit: Callable[[], Any],
    switch: StopSwitch,
    board,
    grace_s: float = GRACE_S,
    failure: Callable[[], str | None] = lambda: None,
) -> FitOutcome:
    """Run `fit` (Ray Train's blocking fit) in a thread, forwarding a stop request to the workers.

    Args:
        failure: asked every few tenths of a second; a non-None answer ends the wait at once.
    """
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = fit()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread as is
            outcome["error"] = err

    # Ray Train registers its own SIGINT handler when fit runs on the main thread; here the driver's stays.
    thread = threading.Thread(target=run, name="ray-train-fit", daemon=True)
    forwarded_at = None
    with switch.waiting_for_a_step():
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if (reason := failure()) is not None:
                return FitOutcome(failure=reason)
            if switch.immediate:
                return FitOutcome(gave_up=True)
            if switch.requested and forwarded_at is None:
                board.request.remote(switch.reason)
                forwarded_at = time.monotonic()
            if forwarded_at is not None and time.monotonic() - forwarded_at > grace_s:
                return FitOutcome(gave_up=True)
    if "error" in outcome:
        raise outcome["error"]
    return FitOutcome(result=outcome["result"])
