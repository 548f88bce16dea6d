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


NONE = Interrupt(checkpoint=False, stop=False)


class PreemptionWatch:
    """Asked once per step by every rank (it is a collective); every rank gets the same answer."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.drain_checkpointed = False

    def check(self) -> Interrupt:
        if self._any_rank_terminated():
            return Interrupt(checkpoint=True, stop=True, reason="SIGTERM")
        # get_preemption_info is a barrier too: every rank calls it at every step.
        if ray.train.get_preemption_info() is not None and not self.drain_checkpointed:
            self.drain_checkpointed = True
            return Interrupt(checkpoint=True, stop=False, reason="node drain")
        return NONE

    def _any_rank_terminated(self) -> bool:
        flag = torch.tensor([1.0 if _TERMINATED.is_set() else 0.0], device=self.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def stop_after_checkpoint(step: int, reason: str) -> None:
    """Wait until Ray Train has committed the checkpoint just reported, then stop every rank."""
    ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
    raise Preempted(f"{reason}: checkpointed at step {step}; Ray Train restarts from it")
