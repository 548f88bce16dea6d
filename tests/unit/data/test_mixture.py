"""Mixture quotas and the sample plan are pure and reproducible."""

from __future__ import annotations

import pytest

from vlmtune.data.mixture import plan_samples, sample_mixture, task_quotas


def records(sizes: dict[str, int]) -> list[dict]:
    return [{"key": f"{task}/{i}", "task": task} for task, n in sizes.items() for i in range(n)]


def test_uniform_quotas_water_fill_small_tasks():
    assert task_quotas({"a": 2, "b": 100, "c": 100}, 50, "uniform") == {"a": 2, "b": 24, "c": 24}


def test_proportional_quotas_follow_sizes():
    assert task_quotas({"a": 10, "b": 30}, 20, "proportional") == {"a": 5, "b": 15}


def test_budget_above_total_keeps_everything():
    assert task_quotas({"a": 3, "b": 4}, 100, "uniform") == {"a": 3, "b": 4}


def test_sample_mixture_is_seeded():
    data = records({"a": 50, "b": 50})
    first = sample_mixture(data, 20, "uniform", seed=1)
    assert len(first) == 20 and sum(r["task"] == "a" for r in first) == 10
    assert first == sample_mixture(data, 20, "uniform", seed=1)
    assert first != sample_mixture(data, 20, "uniform", seed=2)


def test_plan_is_steps_of_micro_batches():
    data = records({"a": 10, "b": 10})
    plan = plan_samples(data, epochs=2, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    assert plan.steps == 4 and plan.steps_per_epoch == 2 and plan.dropped_per_epoch == 4
    assert [[len(micro) for micro in step] for step in plan.steps_plan] == [[2, 2, 2, 2]] * 4
    epoch_keys = [key for step in plan.step_keys()[:2] for micro in step for key in micro]
    assert len(set(epoch_keys)) == 16  # no sample twice within an epoch
    assert plan == plan_samples(data, epochs=2, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)


def test_ranks_take_every_world_th_micro_batch_of_each_step():
    plan = plan_samples(records({"a": 48}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    steps = plan.step_keys()
    for world in (1, 2, 4):
        streams = [plan.rank_micro_batches(rank, world) for rank in range(world)]
        assert all(len(stream) == plan.steps * 4 // world for stream in streams)
        for step in range(plan.steps):
            per_rank = 4 // world  # micro-batches each rank trains in one step
            trained = [[r["key"] for r in streams[rank][step * per_rank + i]]
                       for i in range(per_rank) for rank in range(world)]
            assert trained == steps[step]  # interleaved back, the ranks trained exactly the step's batch


def test_a_stream_resumed_at_a_step_is_the_rest_of_the_stream_at_any_world_size():
    plan = plan_samples(records({"a": 48}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=2, seed=0)
    for world in (1, 2, 4):
        for rank in range(world):
            whole = plan.rank_stream(rank, world)
            assert plan.rank_stream(rank, world, start_step=2) == whole[2 * 8 // world:]
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        plan.rank_stream(2, 2)


def test_max_steps_caps_the_plan():
    plan = plan_samples(records({"a": 40}), epochs=3, max_steps=2, global_batch_size=8, micro_batch_size=4, seed=0)
    assert plan.steps == 2 and len(plan.rank_stream(0, 1)) == 16


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="globalBatchSize"):
        plan_samples(records({"a": 3}), epochs=1, max_steps=None, global_batch_size=8, micro_batch_size=4, seed=0)


def test_select_tasks_by_name_and_by_count():
    from vlmtune.data.mixture import select_tasks

    data = records({"a": 2, "b": 2, "c": 2})
    assert {r["task"] for r in select_tasks(data, ["a", "c"], None, seed=0)} == {"a", "c"}
    drawn = {r["task"] for r in select_tasks(data, None, 2, seed=3)}
    assert len(drawn) == 2 and drawn == {r["task"] for r in select_tasks(data, None, 2, seed=3)}
    with pytest.raises(ValueError, match=r"spec.data.tasks: \['z'\] are not in the data"):
        select_tasks(data, ["z"], None, seed=0)
    with pytest.raises(ValueError, match="spec.data.taskCount: 4 tasks asked for, the data has 3"):
        select_tasks(data, None, 4, seed=0)


def test_weighted_quotas_follow_weights_and_refill_small_tasks():
    assert task_quotas({"a": 100, "b": 100}, 40, "weights", {"a": 3, "b": 1}) == {"a": 30, "b": 10}
    # b holds only 5: its share goes to a; c has no weight and gets nothing.
    assert task_quotas({"a": 100, "b": 5, "c": 50}, 40, "weights", {"a": 1, "b": 1}) == {"a": 35, "b": 5, "c": 0}


def test_length_grouped_plan_pads_less_and_keeps_every_sample_once():
    from vlmtune.data.grouping import padding_fraction

    data = records({"a": 64})
    lengths = [10 + (i * 37) % 200 for i in range(64)]
    length_of = {r["key"]: n for r, n in zip(data, lengths)}
    kwargs = dict(epochs=1, max_steps=None, global_batch_size=16, micro_batch_size=4, seed=0)
    grouped = plan_samples(data, lengths=lengths, **kwargs)
    plain = plan_samples(data, **kwargs)

    def micro_batches(plan):
        return [[length_of[key] for key in micro] for step in plan.step_keys() for micro in step]

    def padding(plan):
        batches = micro_batches(plan)
        flat = [n for batch in batches for n in batch]
        index, groups = 0, []
        for batch in batches:
            groups.append(list(range(index, index + len(batch))))
            index += len(batch)
        return padding_fraction(flat, groups)

    assert sorted(r["key"] for r in grouped.rank_stream(0, 1)) == sorted(r["key"] for r in data)
    assert padding(grouped) < padding(plain) / 2
    assert grouped == plan_samples(data, lengths=lengths, **kwargs)
