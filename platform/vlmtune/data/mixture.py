"""Task mixture and the sample plan: which records each optimizer step trains on, micro-batch by micro-batch.

Everything here is a pure function of the records and the spec, so the plan (and therefore
every worker's data position) is reproducible on resume.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from vlmtune.data.grouping import length_grouped_batches


def by_task(records: list[dict]) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        tasks[record["task"]].append(record)
    return dict(sorted(tasks.items()))


def select_tasks(records: list[dict], names: list[str] | None, count: int | None, seed: int) -> list[dict]:
    """Keep the named tasks, or `count` tasks drawn with `seed`.

    Raises:
        ValueError: naming tasks the data does not have, or asking for more tasks than there are.
    """
    present = sorted({record["task"] for record in records})
    if names is not None:
        missing = sorted(set(names) - set(present))
        if missing:
            raise ValueError(f"spec.data.tasks: {missing} are not in the data; tasks present: {present}")
        keep = set(names)
    elif count is not None:
        if count > len(present):
            raise ValueError(f"spec.data.taskCount: {count} tasks asked for, the data has {len(present)}")
        keep = set(random.Random(f"{seed}:tasks").sample(present, count))
    else:
        return records
    return [record for record in records if record["task"] in keep]


def task_quotas(sizes: dict[str, int], budget: int, mixture: str,
                weights: dict[str, float] | None = None) -> dict[str, int]:
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


def sample_mixture(records: list[dict], budget: int | None, mixture: str, seed: int,
                   weights: dict[str, float] | None = None) -> list[dict]:
    """Apply the budget per task (seeded choice within a task), keeping task order stable."""
    tasks = by_task(records)
    if budget is None:
        return [record for group in tasks.values() for record in group]
    quotas = task_quotas({task: len(group) for task, group in tasks.items()}, budget, mixture, weights)
    chosen = []
    for task, group in tasks.items():
        rng = random.Random(f"{seed}:{task}")
        chosen.extend(rng.sample(group, quotas[task]))
    return chosen


def _epoch_micro_batches(records: list[dict], lengths: list[int] | None, micro: int, global_batch: int,
                         seed: str) -> list[list[dict]]:
    if lengths is None:
        order = list(records)
        random.Random(seed).shuffle(order)
        return [order[i:i + micro] for i in range(0, len(order), micro)]
    # Windows of one global batch keep every micro-batch inside one optimizer step, and every
    # micro-batch but the epoch's last one full, so steps split on micro-batch edges.
    batches = length_grouped_batches(lengths, micro, seed, megabatch=global_batch // micro)
    return [[records[index] for index in batch] for batch in batches]


@dataclass(frozen=True)
class SamplePlan:
    """The whole run's sample order: for every optimizer step, its micro-batches in a fixed order.

    The plan does not depend on the number of workers. At world size W, rank r trains micro-batches
    r, r+W, r+2W, ... of each step, so a data position is just a step: a run resumed at step s with
    any W starts every rank's stream at step s, and the union of what the ranks train at a step is
    always the same global batch.
    """

    steps_plan: list[list[list[dict]]]  # step -> micro-batch -> records
    steps: int
    steps_per_epoch: int
    dropped_per_epoch: int
    samples_per_epoch: int

    def rank_micro_batches(self, rank: int, world: int, start_step: int = 0) -> list[list[dict]]:
        """Rank `rank` of `world`'s micro-batches from `start_step` on, in training order."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside world size {world}")
        return [micro for step in self.steps_plan[start_step:] for micro in step[rank::world]]

    def rank_stream(self, rank: int, world: int, start_step: int = 0) -> list[dict]:
        """The same, flattened: the records rank `rank` trains from `start_step` on."""
        return [record for micro in self.rank_micro_batches(rank, world, start_step) for record in micro]

    def step_keys(self) -> list[list[list[str]]]:
        """step -> micro-batch -> sample keys (what the sample ledger is checked against)."""
        return [[[record["key"] for record in micro] for micro in step] for step in self.steps_plan]


def plan_samples(records: list[dict], *, epochs: int, max_steps: int | None, global_batch_size: int,
                 micro_batch_size: int, seed: int, lengths: list[int] | None = None) -> SamplePlan:
    """The whole run's micro-batches, step by step.

    With `lengths` (one per record), each epoch's order is length-grouped: shuffled, cut into
    windows of one global batch, sorted by length inside a window and cut into micro-batches, so a
    micro-batch holds samples of similar length (less padding) while the window order stays
    random. Without them the epoch order is a plain shuffle cut into micro-batches.
    """
    if global_batch_size % micro_batch_size:
        raise ValueError(f"globalBatchSize {global_batch_size} is not a multiple of microBatchSize {micro_batch_size}")
    steps_per_epoch = len(records) // global_batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(records)} samples are fewer than one global batch ({global_batch_size}); "
            "lower spec.training.globalBatchSize or add data"
        )
    steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    per_step = global_batch_size // micro_batch_size
    micro_batches: list[list[dict]] = []
    epoch = 0
    while len(micro_batches) < steps * per_step:
        batches = _epoch_micro_batches(records, lengths, micro_batch_size, global_batch_size, f"{seed}:epoch:{epoch}")
        micro_batches.extend(batches[: steps_per_epoch * per_step])  # whole steps only: the tail is dropped
        epoch += 1
    steps_plan = [micro_batches[start:start + per_step] for start in range(0, steps * per_step, per_step)]
    dropped = len(records) - steps_per_epoch * global_batch_size
    return SamplePlan(steps_plan, steps, steps_per_epoch, dropped, len(records))
