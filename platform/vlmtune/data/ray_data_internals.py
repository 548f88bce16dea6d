"""What vlmtune relies on inside Ray Data, in one place, checked against the installed Ray.

Ray Data's streaming executor runs its scheduling loop in a thread of the process that iterates a dataset (here each
train worker). Each pass waits on the tasks in flight; when backpressure holds every operator (the consumer, training,
is slower than reading and preprocessing), no task is in flight, nothing is waited on and the loop spins holding the
GIL. Measured on the quickstart (2 cores): rank 0's executor thread used 93% of a core and starved its training
thread, so every rank trained at 17 samples/s until that stream had produced its last block, then at 79.

The one hook into every pass is an execution callback: the registry (`DataContext.custom_execution_callback_classes`)
is public, its base class is not. `LoopPacer` sleeps briefly after a pass that returned at once, so an idle loop
polls about a hundred times a second instead of spinning; a pass that waited on a task is not slowed.
"""

from __future__ import annotations

import time

from ray.data import DataContext
from ray.data._internal.execution.execution_callback import ExecutionCallback

BUSY_PASS_S = 0.002  # a pass shorter than this waited on nothing
PAUSE_S = 0.01


class LoopPacer(ExecutionCallback):
    """Ray Data execution callback (instantiated by Ray once per execution, without arguments)."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.pauses = 0

    def on_execution_step(self, executor) -> None:
        now = time.perf_counter()
        if self._last is not None and now - self._last < BUSY_PASS_S:
            time.sleep(PAUSE_S)
            self.pauses += 1
            now = time.perf_counter()
        self._last = now


def pace_scheduling_loop(context: DataContext) -> None:
    """Register `LoopPacer` for the datasets that run with `context` (once)."""
    if LoopPacer not in context.custom_execution_callback_classes:
        context.custom_execution_callback_classes.append(LoopPacer)
