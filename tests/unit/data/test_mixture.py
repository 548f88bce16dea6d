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


def test_plan_splits_each_global_batch_across_ranks():
    data = records({"a": 10, "b": 10})
    plan = plan_samples(data, epochs=2, max_steps=None, global_batch_size=8, workers=2, seed=0)
    assert plan.steps == 4 and plan.steps_per_epoch == 2 and plan.dropped_per_epoch == 4
    assert [len(stream) for stream in plan.per_rank] == [16, 16]
    epoch_keys = [r["key"] for stream in plan.per_rank for r in stream[:8]]
    assert len(set(epoch_keys)) == 16  # no sample twice within an epoch
    assert plan == plan_samples(data, epochs=2, max_steps=None, global_batch_size=8, workers=2, seed=0)


def test_max_steps_caps_the_plan():
    plan = plan_samples(records({"a": 40}), epochs=3, max_steps=2, global_batch_size=8, workers=1, seed=0)
    assert plan.steps == 2 and len(plan.per_rank[0]) == 16


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="globalBatchSize"):
        plan_samples(records({"a": 3}), epochs=1, max_steps=None, global_batch_size=8, workers=1, seed=0)
