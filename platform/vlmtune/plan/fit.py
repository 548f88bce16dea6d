"""The verdict: does a setup fit, and if not, the smallest change that would.

Changes are tried in a fixed order, cheapest in throughput first: the chunked loss (the same math without
full logits), gradient checkpointing, a smaller micro-batch, ZeRO-3, optimizer offload, parameter offload,
more workers. The first single change
that fits wins; when none does, changes are combined in the same order until the setup fits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vlmtune.plan.memory import Setup

MAX_WORKERS = 1024  # spec.resources.workers' upper bound


@dataclass(frozen=True)
class Change:
    field: str
    """Spec field path, e.g. spec.training.microBatchSize."""
    old: object
    new: object

    def as_override(self) -> str:
        value = str(self.new).lower() if isinstance(self.new, bool) else self.new
        return f"{self.field}={value}"


@dataclass(frozen=True)
class Suggestion:
    changes: tuple[Change, ...]
    setup: Setup
    per_gpu_bytes: int


Option = tuple[Change, Setup]
SETUP_FIELDS = {
    "spec.training.chunkedLoss": "chunked_loss",
    "spec.training.gradientCheckpointing": "checkpointing",
    "spec.training.microBatchSize": "micro_batch",
    "spec.training.deepspeed.zeroStage": "zero_stage",
    "spec.training.deepspeed.offloadOptimizer": "offload_optimizer",
    "spec.training.deepspeed.offloadParams": "offload_params",
    "spec.resources.workers": "ranks",
}


def suggest(setup: Setup, per_gpu: Callable[[Setup], int], capacity: int) -> Suggestion | None:
    """The smallest change to `setup` whose per-GPU bytes fit in `capacity`, or None.

    Args:
        setup: the job's settings (assumed not to fit).
        per_gpu: per-GPU bytes of a setup.
        capacity: the GPU's memory in bytes.
    """
    for kind in KINDS:
        for change, changed in kind(setup):
            if (used := per_gpu(changed)) <= capacity:
                return Suggestion((change,), changed, used)
    return _combined(setup, per_gpu, capacity)


def _combined(setup: Setup, per_gpu: Callable[[Setup], int], capacity: int) -> Suggestion | None:
    """Apply each kind in order (its mildest option that fits, else its strongest) until the setup
    fits, then drop every change the result does not need."""
    current, changes = setup, []
    for kind in KINDS:
        found = list(kind(current))
        if not found:
            continue
        change, current = next(((c, s) for c, s in found if per_gpu(s) <= capacity), found[-1])
        changes.append(change)
        if per_gpu(current) <= capacity:
            break
    else:
        return None
    for change in list(changes):
        reverted = current.but(**{SETUP_FIELDS[change.field]: change.old})
        if _divides(reverted) and _valid(reverted) and per_gpu(reverted) <= capacity:
            current = reverted
            changes.remove(change)
    return Suggestion(tuple(changes), current, per_gpu(current))


def _divides(setup: Setup) -> bool:
    return setup.global_batch % (setup.ranks * setup.micro_batch) == 0


def _valid(setup: Setup) -> bool:
    return not (setup.offload_params and setup.zero_stage != 3) and not (
        setup.offload_optimizer and setup.zero_stage == 0
    )


def _chunked_loss(setup: Setup) -> Iterator[Option]:
    if not setup.chunked_loss:
        yield Change("spec.training.chunkedLoss", False, True), setup.but(chunked_loss=True)


def _checkpointing(setup: Setup) -> Iterator[Option]:
    if not setup.checkpointing:
        yield Change("spec.training.gradientCheckpointing", False, True), setup.but(checkpointing=True)


def _micro_batch(setup: Setup) -> Iterator[Option]:
    # Largest first: the least gradient accumulation that fits. globalBatchSize must stay divisible.
    for micro in range(setup.micro_batch - 1, 0, -1):
        if setup.global_batch % (setup.ranks * micro) == 0:
            yield Change("spec.training.microBatchSize", setup.micro_batch, micro), setup.but(micro_batch=micro)


def _zero3(setup: Setup) -> Iterator[Option]:
    if setup.zero_stage < 3:
        yield Change("spec.training.deepspeed.zeroStage", setup.zero_stage, 3), setup.but(zero_stage=3)


def _offload_optimizer(setup: Setup) -> Iterator[Option]:
    if setup.zero_stage >= 1 and not setup.offload_optimizer:
        yield (Change("spec.training.deepspeed.offloadOptimizer", False, True), setup.but(offload_optimizer=True))


def _offload_params(setup: Setup) -> Iterator[Option]:
    if setup.zero_stage == 3 and not setup.offload_params:
        yield Change("spec.training.deepspeed.offloadParams", False, True), setup.but(offload_params=True)


def _workers(setup: Setup) -> Iterator[Option]:
    limit = min(MAX_WORKERS, setup.global_batch // setup.micro_batch)
    for workers in range(setup.ranks + 1, limit + 1):
        if setup.global_batch % (workers * setup.micro_batch) == 0:
            yield Change("spec.resources.workers", setup.ranks, workers), setup.but(ranks=workers)


KINDS: tuple[Callable[[Setup], Iterator[Option]], ...] = (
    _chunked_loss,
    _checkpointing,
    _micro_batch,
    _zero3,
    _offload_optimizer,
    _offload_params,
    _workers,
)
