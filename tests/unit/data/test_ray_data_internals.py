"""The Ray Data hook vlmtune relies on exists in the installed Ray, and the pacer only slows passes that spin."""

from __future__ import annotations

import inspect
import time

from ray.data import DataContext
from ray.data._internal.execution import streaming_executor

from vlmtune.data.ray_data_internals import BUSY_PASS_S, PAUSE_S, LoopPacer, pace_scheduling_loop


def test_the_executor_calls_every_callback_after_every_scheduling_pass():
    source = inspect.getsource(streaming_executor.StreamingExecutor.run)
    assert "self._scheduling_loop_step(" in source and "callback.on_execution_step(self)" in source
    context = DataContext()
    pace_scheduling_loop(context)
    pace_scheduling_loop(context)
    assert context.custom_execution_callback_classes == [LoopPacer]
    assert LoopPacer in context.execution_callback_classes  # what the planner instantiates per execution


def test_a_pass_that_returned_at_once_pauses_and_one_that_waited_does_not():
    pacer = LoopPacer()
    pacer.on_execution_step(None)  # the first pass has nothing to compare with
    started = time.perf_counter()
    pacer.on_execution_step(None)  # straight after: a spinning loop
    assert pacer.pauses == 1 and time.perf_counter() - started >= PAUSE_S
    time.sleep(BUSY_PASS_S * 5)  # a pass that waited on a task
    pacer.on_execution_step(None)
    assert pacer.pauses == 1
