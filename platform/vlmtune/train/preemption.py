"""Preemption: checkpoint at the next step boundary when a worker is about to go away.

Two signals, one per way a cluster takes a worker back:

* SIGTERM to a worker process (Kubernetes pod eviction, a spot node's shutdown): Ray's own handler
  would end the process at once, losing everything since the last periodic checkpoint. Here the
  handler only raises a flag; after the step in flight, all ranks agree on it (one all_reduce of
  a flag per step), save a checkpoint and stop, and Ray Train's FailureConfig restarts the group
  from that checkpoint (an elastic job at whatever size the cluster now has).
* Ray's drain notice for a node (`ray.train.get_preemption_info`, e.g. the autoscaler reclaiming a
  spot node): Ray's advice is to save a checkpoint at once and keep training; when the node goes,
  Ray Train restarts the run from it, counted against `max_preemption_failures`.

A third comes from the driver (`stop`): SIGTERM or Ctrl-C on `vlmtune run` makes rank 0 see a request on
the stop board; the ranks checkpoint the same way, then return instead of restarting.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

import ray
import ray.train
import torch
import torch.distributed as dist

from vlmtune.train.stop import Poll

log = logging.getLogger(__name__)

_TERMINATED = threading.Event()  # set by the SIGTERM handler, read by the training thread


class Preempted(RuntimeError):
    """Raised on every rank after the preemption checkpoint, so Ray Train restarts from it."""


def catch_sigterm() -> None:
    """Make SIGTERM to this Ray Train worker process raise the flag instead of ending it.

    Python sets signal handlers only from the main thread; the train function runs in a thread of
    the Ray Train worker actor, whose main thread runs the actor's tasks, so a task installs it.
    """
    actor = ray.get_runtime_context().current_actor
    try:
        ray.get(actor.execute.remote(_install_handler))
    except ValueError as error:  # not the main thread after all: SIGTERM keeps Ray's behaviour
        log.warning("SIGTERM stays fatal for this worker (no preemption checkpoint): %s", error)


def _install_handler() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    _TERMINATED.set()


@dataclass(frozen=True)
class Interrupt:
    checkpoint: bool  # save a checkpoint at this step boundary
    stop: bool  # and then stop (SIGTERM); a drain notice keeps training
    reason: str = ""
    final: bool = False  # the driver asked: the run ends after the checkpoint (no restart)


NONE = Interrupt(checkpoint=False, stop=False)


_WORKER_SIGTERM, _DRIVER_STOP = 1.0, 2.0  # flag values; the all-reduce keeps the largest


class PreemptionWatch:
    """Asked once per step by every rank (it is a collective); every rank gets the same answer.

    Args:
        stop_board: rank 0's handle on the driver's StopBoard (None on other ranks).
    """

    def __init__(self, device: torch.device, stop_board=None) -> None:
        self.device = device
        self.drain_checkpointed = False
        self.stop_board = stop_board
        self._poll = Poll(stop_board.poll) if stop_board is not None else None

    def check(self) -> Interrupt:
        flag = self._agreed_flag()
        if flag == _DRIVER_STOP:
            return Interrupt(checkpoint=True, stop=True, reason="a stop request to the driver", final=True)
        if flag == _WORKER_SIGTERM:
            return Interrupt(checkpoint=True, stop=True, reason="SIGTERM")
        # get_preemption_info is a barrier too: every rank calls it at every step.
        if ray.train.get_preemption_info() is not None and not self.drain_checkpointed:
            self.drain_checkpointed = True
            return Interrupt(checkpoint=True, stop=False, reason="node drain")
        return NONE

    def _agreed_flag(self) -> float:
        local = _DRIVER_STOP if self._poll and self._poll() else (_WORKER_SIGTERM if _TERMINATED.is_set() else 0.0)
        flag = torch.tensor([local], device=self.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return float(flag.item())

    def stop_after_checkpoint(self, step: int, interrupt: Interrupt) -> None:
        """Wait until Ray Train has committed the checkpoint just reported; then stop every rank for a restart
        (raises Preempted), or, when the driver asked, tell it the step and return."""
        ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
        if not interrupt.final:
            raise Preempted(f"{interrupt.reason}: checkpointed at step {step}; Ray Train restarts from it")
        if self.stop_board is not None:
            ray.get(self.stop_board.stopped.remote(step))
