"""Task mixture and the sample plan: which sample ids each optimizer step trains on, micro-batch by micro-batch.

Everything here is a pure function of the catalog's arrays and the spec, so the plan (and therefore
every worker's data position) is reproducible on resume. The plan is one integer array: a few bytes
per planned sample, whatever the images and conversations weigh.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from vlmtune.data.grouping import length_grouped_order, seeded

MAX_PLANNED_SAMPLES = 2_000_000_000  # 16 GB of ids: any plan beyond this is a typo in epochs or maxSteps


def select_tasks(present: list[str], names: list[str] | None, count: int | None, seed: int) -> set[str]:
    """The tasks to train on: the named ones, `count` drawn with `seed`, or all.

    Raises:
        ValueError: naming tasks the data does not have, or asking for more tasks than there are.
    """
    present = sorted(present)
    if names is not None:
        missing = sorted(set(names) - set(present))
        if missing:
            raise ValueError(f"spec.data.tasks: {missing} are not in the data; tasks present: {present}")
        return set(names)
    if count is not None:
        if count > len(present):
            raise ValueError(f"spec.data.taskCount: {count} tasks asked for, the data has {len(present)}")
        return set(random.Random(f"{seed}:tasks").sample(present, count))
    return set(present)


def task_quotas(
    sizes: dict[str, int], budget: int, mixture: str, weights: dict[str, float] | None = None
) -> dict[str, int]:
    """Samples per task under `budget`: `uniform` water-fills equal shares, `proportional` scales sizes,
    `weights` scales the given weights (a task's quota never exceeds its size)."""
    if mixture == "weights":
        return _weighted_quotas(sizes, budget, weights or {})
    total = sum(sizes.values())
    if budget >= total:
        return dict(sizes)
    if mixture == "proportional":
        quotas = {task: size * budget // total for task, size in sizes.items()}
    else:
        quotas, remaining, open_tasks = {task: 0 for task in sizes}, budget, sorted(sizes, key=sizes.get)
        while open_tasks and remaining > 0:
            share = max(1, remaining // len(open_tasks))
            task = open_tasks.pop(0)
            take = min(sizes[task], share, remaining)
            quotas[task], remaining = take, remaining - take
    shortfall = budget - sum(quotas.values())
    for task in sorted(sizes, key=lambda t: sizes[t] - quotas[t], reverse=True):
        if shortfall <= 0:
            break
        extra = min(shortfall, sizes[task] - quotas[task])
        quotas[task] += extra
        shortfall -= extra
    return quotas


def _weighted_quotas(sizes: dict[str, int], budget: int, weights: dict[str, float]) -> dict[str, int]:
    unknown = sorted(set(weights) - set(sizes))
    if unknown:
        raise ValueError(f"spec.data.weights: {unknown} are not in the data; tasks present: {sorted(sizes)}")
    quotas, remaining = {task: 0 for task in sizes}, budget
    open_tasks = {task for task, weight in weights.items() if weight > 0}
    # Water-filling: a task that runs out of samples hands its share to the others, by weight.
    while open_tasks and remaining > 0:
        total = sum(weights[task] for task in open_tasks)
        shares = {task: max(1, int(remaining * weights[task] / total)) for task in sorted(open_tasks)}
        progressed = 0
        for task, share in shares.items():
            take = min(share, sizes[task] - quotas[task], remaining - progressed)
            quotas[task] += take
            progressed += take
            if quotas[task] >= sizes[task]:
                open_tasks.discard(task)
        remaining -= progressed
        if progressed == 0:
            break
    return quotas


def sample_mixture(
    ids_by_task: dict[str, np.ndarray],
    budget: int | None,
    mixture: str,
    seed: int,
    weights: dict[str, float] | None = None,
) -> np.ndarray:
    """The ids kept under the budget: a seeded choice within each task, tasks in name order."""
    tasks = dict(sorted(ids_by_task.items()))
    if budget is None:
        return _concat(list(tasks.values()))
    quotas = task_quotas({task: len(ids) for task, ids in tasks.items()}, budget, mixture, weights)
    return _concat([ids[seeded(seed, task).permutation(len(ids))[: quotas[task]]] for task, ids in tasks.items()])


@dataclass(frozen=True, eq=False)
class SamplePlan:
    """The whole run's sample order: for every optimizer step, its micro-batches of sample ids in a fixed order.

    The plan does not depend on the number of workers. At world size W, rank r trains micro-batches
    r, r+W, r+2W, ... of each step, so a data position is just a step: a run resumed at step s with
    any W starts every rank's stream at step s, and the union of what the ranks train at a step is
    always the same global batch.
    """

    ids: np.ndarray  # int64, (steps, micro-batches per step, micro-batch size)
    steps_per_epoch: int
    dropped_per_epoch: int
    samples_per_epoch: int

    @property
    def steps(self) -> int:
        return int(self.ids.shape[0])

    def rank_ids(self, rank: int, world: int, start_step: int = 0) -> np.ndarray:
        """Rank `rank` of `world`'s micro-batches from `start_step` on, in training order: (micro-batches, size)."""
        return rank_slice(self.ids, rank, world, start_step)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SamplePlan)
            and np.array_equal(self.ids, other.ids)
            and (self.steps_per_epoch, self.dropped_per_epoch, self.samples_per_epoch)
            == (other.steps_per_epoch, other.dropped_per_epoch, other.samples_per_epoch)
        )


def rank_slice(ids: np.ndarray, rank: int, world: int, start_step: int = 0) -> np.ndarray:
    """Micro-batches rank, rank+world, ... of every step from `start_step` on (a copy), as (micro-batches, size).

    Raises:
        ValueError: the rank is outside the world, or the world does not divide the micro-batches of a step.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside world size {world}")
    if ids.shape[1] % world:
        raise ValueError(f"{ids.shape[1]} micro-batches per step do not split over {world} ranks")
    return np.array(ids[start_step:, rank::world, :].reshape(-1, ids.shape[2]))


def plan_samples(
    ids: np.ndarray,
    *,
    epochs: int,
    max_steps: int | None,
    global_batch_size: int,
    micro_batch_size: int,
    seed: int,
    lengths: np.ndarray | None = None,
) -> SamplePlan:
    """The whole run's micro-batches of `ids`, step by step.

    With `lengths` (one per id), each epoch's order is length-grouped: shuffled, cut into windows
    of one global batch, sorted by length inside a window and cut into micro-batches, so a
    micro-batch holds samples of similar length (less padding) while the window order stays
    random. Without them the epoch order is a plain shuffle cut into micro-batches.

    Raises:
        ValueError: fewer samples than one global batch, batch sizes that do not divide, or an absurd plan.
    """
    if global_batch_size % micro_batch_size:
        raise ValueError(f"globalBatchSize {global_batch_size} is not a multiple of microBatchSize {micro_batch_size}")
    ids = np.asarray(ids, dtype=np.int64)
    steps_per_epoch = len(ids) // global_batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(ids)} samples are fewer than one global batch ({global_batch_size}); "
            "lower spec.training.globalBatchSize or add data"
        )
    steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    if steps * global_batch_size > MAX_PLANNED_SAMPLES:
        raise ValueError(
            f"spec.training: {steps:,} steps x {global_batch_size} samples is beyond any real run; "
            "lower epochs or set maxSteps"
        )
    per_epoch = steps_per_epoch * global_batch_size  # whole steps only: the tail is dropped
    planned = np.empty(steps * global_batch_size, np.int64)
    for epoch, start in enumerate(range(0, len(planned), per_epoch)):
        order = _epoch_order(lengths, micro_batch_size, global_batch_size, seeded(seed, "epoch", epoch), len(ids))
        take = min(per_epoch, len(planned) - start)
        planned[start : start + take] = ids[order[:take]]
    shape = (steps, global_batch_size // micro_batch_size, micro_batch_size)
    return SamplePlan(planned.reshape(shape), steps_per_epoch, len(ids) - per_epoch, len(ids))


def _epoch_order(
    lengths: np.ndarray | None, micro: int, global_batch: int, rng: np.random.Generator, count: int
) -> np.ndarray:
    if lengths is None:
        return rng.permutation(count)
    # Windows of one global batch keep every micro-batch inside one optimizer step, and every
    # micro-batch but the epoch's last one full, so steps split on micro-batch edges.
    return length_grouped_order(np.asarray(lengths), micro, rng, megabatch=global_batch // micro)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.int64, copy=False) if arrays else np.zeros(0, np.int64)


def job_plan(spec, catalog, image_tokens: int) -> SamplePlan:
    """A TuningJob's plan: task selection, mixture and every step's micro-batches, from the catalog alone.

    Args:
        spec: the TuningJob spec (`data` and `training` are read).
        catalog: the job's `data.catalog.Catalog`.
        image_tokens: the model's tokens per image (for length grouping).
    """
    data, training = spec.data, spec.training
    by_task = catalog.ids_by_task()
    tasks = select_tasks(list(by_task), data.tasks, data.task_count, data.seed)
    ids = sample_mixture(
        {task: by_task[task] for task in tasks}, data.max_samples, data.mixture.value, data.seed, data.weights
    )
    lengths = catalog.lengths(image_tokens)[ids] if training.group_by_length else None
    return plan_samples(
        ids,
        epochs=training.epochs,
        max_steps=training.max_steps,
        global_batch_size=training.global_batch_size,
        micro_batch_size=training.micro_batch_size,
        seed=data.seed,
        lengths=lengths,
    )
