"""Task mixture and the sample plan: which record each rank trains on at each step.

Everything here is a pure function of the records and the spec, so the plan (and therefore
every worker's data position) is reproducible on resume.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass


def by_task(records: list[dict]) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        tasks[record["task"]].append(record)
    return dict(sorted(tasks.items()))


def task_quotas(sizes: dict[str, int], budget: int, mixture: str) -> dict[str, int]:
    """Samples per task under `budget`: `uniform` water-fills equal shares, `proportional` scales sizes."""
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


def sample_mixture(records: list[dict], budget: int | None, mixture: str, seed: int) -> list[dict]:
    """Apply the budget per task (seeded choice within a task), keeping task order stable."""
    tasks = by_task(records)
    if budget is None:
        return [record for group in tasks.values() for record in group]
    quotas = task_quotas({task: len(group) for task, group in tasks.items()}, budget, mixture)
    chosen = []
    for task, group in tasks.items():
        rng = random.Random(f"{seed}:{task}")
        chosen.extend(rng.sample(group, quotas[task]))
    return chosen


@dataclass(frozen=True)
class SamplePlan:
    """The whole run's sample order, split into per-rank streams.

    Step s consumes `global_batch_size` samples; rank r trains on the r-th contiguous slice of
    each global batch, so a rank's stream is fixed before training starts.
    """

    per_rank: list[list[dict]]
    steps: int
    steps_per_epoch: int
    dropped_per_epoch: int


def plan_samples(records: list[dict], *, epochs: int, max_steps: int | None, global_batch_size: int,
                 workers: int, seed: int) -> SamplePlan:
    steps_per_epoch = len(records) // global_batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(records)} samples are fewer than one global batch ({global_batch_size}); "
            "lower spec.training.globalBatchSize or add data"
        )
    steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    stream: list[dict] = []
    epoch = 0
    while len(stream) < steps * global_batch_size:
        order = list(records)
        random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
        stream.extend(order[: steps_per_epoch * global_batch_size])
        epoch += 1
    stream = stream[: steps * global_batch_size]
    per_rank_batch = global_batch_size // workers
    per_rank: list[list[dict]] = [[] for _ in range(workers)]
    for start in range(0, len(stream), global_batch_size):
        batch = stream[start:start + global_batch_size]
        for rank in range(workers):
            per_rank[rank].extend(batch[rank * per_rank_batch:(rank + 1) * per_rank_batch])
    return SamplePlan(per_rank, steps, steps_per_epoch, len(records) - steps_per_epoch * global_batch_size)
