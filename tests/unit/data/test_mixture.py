"""Mixture quotas and the sample plan are pure and reproducible, over integer sample ids."""

from __future__ import annotations

import numpy as np
import pytest

from vlmtune.data.mixture import plan_samples, sample_mixture, select_tasks, task_quotas


def by_task(sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Task -> ids; ids of consecutive tasks follow each other, as in a catalog."""
    groups, start = {}, 0
    for task, n in sizes.items():
        groups[task] = np.arange(start, start + n)
        start += n
    return groups


def ids_of(sizes: dict[str, int]) -> np.ndarray:
    return np.concatenate(list(by_task(sizes).values()))


def test_uniform_quotas_water_fill_small_tasks():
    assert task_quotas({"a": 2, "b": 100, "c": 100}, 50, "uniform") == {"a": 2, "b": 24, "c": 24}


def test_proportional_quotas_follow_sizes():
    assert task_quotas({"a": 10, "b": 30}, 20, "proportional") == {"a": 5, "b": 15}


def test_budget_above_total_keeps_everything():
    assert task_quotas({"a": 3, "b": 4}, 100, "uniform") == {"a": 3, "b": 4}


def test_sample_mixture_is_seeded():
    data = by_task({"a": 50, "b": 50})
    first = sample_mixture(data, 20, "uniform", seed=1)
    assert len(first) == 20 and int((first < 50).sum()) == 10
    assert np.array_equal(first, sample_mixture(data, 20, "uniform", seed=1))
    assert not np.array_equal(first, sample_mixture(data, 20, "uniform", seed=2))
    assert len(set(first.tolist())) == 20  # a choice without repeats


def test_plan_is_steps_of_micro_batches():
    ids = ids_of({"a": 10, "b": 10})
    plan = plan_samples(ids, epochs=2, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    assert plan.steps == 4 and plan.steps_per_epoch == 2 and plan.dropped_per_epoch == 4
    assert plan.ids.shape == (4, 4, 2) and plan.ids.dtype == np.int64
    epoch = plan.ids[:2].reshape(-1)
    assert len(set(epoch.tolist())) == 16  # no sample twice within an epoch
    assert plan == plan_samples(ids, epochs=2, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)


def test_ranks_take_every_world_th_micro_batch_of_each_step():
    plan = plan_samples(ids_of({"a": 48}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    for world in (1, 2, 4):
        streams = [plan.rank_ids(rank, world) for rank in range(world)]
        assert all(len(stream) == plan.steps * 4 // world for stream in streams)
        for step in range(plan.steps):
            per_rank = 4 // world  # micro-batches each rank trains in one step
            trained = [streams[rank][step * per_rank + i].tolist() for i in range(per_rank) for rank in range(world)]
            assert trained == plan.ids[step].tolist()  # interleaved back, the ranks trained exactly the step's batch


def test_a_stream_resumed_at_a_step_is_the_rest_of_the_stream_at_any_world_size():
    plan = plan_samples(ids_of({"a": 48}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    for world in (1, 2, 4):
        for rank in range(world):
            whole = plan.rank_ids(rank, world)
            assert np.array_equal(plan.rank_ids(rank, world, start_step=2), whole[2 * 4 // world :])
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        plan.rank_ids(2, 2)


def test_a_rank_slice_is_a_copy_not_a_view_of_the_whole_plan():
    plan = plan_samples(ids_of({"a": 64}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    part = plan.rank_ids(1, 2, start_step=3)
    assert part.base is None and part.nbytes == (plan.steps - 3) * 2 * 2 * 8


def test_max_steps_caps_the_plan():
    plan = plan_samples(ids_of({"a": 40}), epochs=3, max_steps=2, global_batch_size=8, micro_batch_size=4, seed=0)
    assert plan.steps == 2 and plan.rank_ids(0, 1).size == 16


def test_later_epochs_reshuffle():
    plan = plan_samples(ids_of({"a": 16}), epochs=3, max_steps=None, global_batch_size=8, micro_batch_size=4, seed=0)
    epochs = plan.ids.reshape(3, -1)
    assert all(sorted(epoch.tolist()) == list(range(16)) for epoch in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="globalBatchSize"):
        plan_samples(ids_of({"a": 3}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=4, seed=0)


def test_an_absurd_plan_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match="lower epochs or set maxSteps"):
        plan_samples(ids_of({"a": 16}), epochs=10**9, max_steps=None, global_batch_size=8, micro_batch_size=4, seed=0)


def test_select_tasks_by_name_and_by_count():
    present = ["a", "b", "c"]
    assert select_tasks(present, ["a", "c"], None, seed=0) == {"a", "c"}
    drawn = select_tasks(present, None, 2, seed=3)
    assert len(drawn) == 2 and drawn == select_tasks(present, None, 2, seed=3)
    assert select_tasks(present, None, None, seed=0) == {"a", "b", "c"}
    with pytest.raises(ValueError, match=r"spec.data.tasks: \['z'\] are not in the data"):
        select_tasks(present, ["z"], None, seed=0)
    with pytest.raises(ValueError, match="spec.data.taskCount: 4 tasks asked for, the data has 3"):
        select_tasks(present, None, 4, seed=0)


def test_weighted_quotas_follow_weights_and_refill_small_tasks():
    assert task_quotas({"a": 100, "b": 100}, 40, "weights", {"a": 3, "b": 1}) == {"a": 30, "b": 10}
    # b holds only 5: its share goes to a; c has no weight and gets nothing.
    assert task_quotas({"a": 100, "b": 5, "c": 50}, 40, "weights", {"a": 1, "b": 1}) == {"a": 35, "b": 5, "c": 0}


def test_length_grouped_plan_pads_less_and_keeps_every_sample_once():
    from vlmtune.data.grouping import padding_fraction

    ids = ids_of({"a": 64})
    lengths = np.asarray([10 + (i * 37) % 200 for i in range(64)])
    kwargs = dict(epochs=1, max_steps=None, global_batch_size=16, micro_batch_size=4, seed=0)
    grouped = plan_samples(ids, lengths=lengths, **kwargs)
    plain = plan_samples(ids, **kwargs)

    def padding(plan):
        batches = plan.ids.reshape(-1, 4)
        return padding_fraction(lengths, batches)

    assert sorted(grouped.rank_ids(0, 1).reshape(-1).tolist()) == list(range(64))
    assert padding(grouped) < padding(plain) / 2
    assert grouped == plan_samples(ids, lengths=lengths, **kwargs)


def test_a_vision_flan_sized_plan_is_a_few_bytes_per_sample():
    ids = np.arange(1_664_261)
    lengths = np.random.default_rng(0).integers(60, 2000, len(ids)).astype(np.int32)
    plan = plan_samples(
        ids, lengths=lengths, epochs=1, max_steps=None, global_batch_size=128, micro_batch_size=16, seed=0
    )
    assert plan.ids.nbytes == plan.steps * 128 * 8 and plan.steps == 1_664_261 // 128
