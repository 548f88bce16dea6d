"""Samples, steps, tokens, FLOPs and hours."""

from __future__ import annotations

import pytest

from vlmtune.data.demo import DEMO_TASKS
from vlmtune.plan.budget import VISION_FLAN_INSTANCES, budget, sample_count, train_steps
from vlmtune.spec import DataSpec
from vlmtune.train.flops import train_flops
from vlmtune_model.shapes import LLAVA_13B

STAGE = ("projector", "language_model")


def data(**fields) -> DataSpec:
    return DataSpec.model_validate(fields)


def test_steps_count_whole_global_batches_like_the_trainer():
    assert train_steps(1000, epochs=2, global_batch=128, max_steps=None) == 14  # 7 per epoch, 104 dropped
    assert train_steps(1000, epochs=2, global_batch=128, max_steps=5) == 5
    assert train_steps(None, epochs=1, global_batch=128, max_steps=10) == 10
    assert train_steps(None, epochs=1, global_batch=128, max_steps=None) is None


def test_demo_suite_size_is_per_task_times_tasks():
    assert sample_count(data(sources=[{"demo": {"perTask": 96}}])) == (
        96 * len(DEMO_TASKS),
        "demo suite: perTask x tasks",
    )
    two_tasks = data(sources=[{"demo": {"perTask": 10, "tasks": ["shape_name", "dot_count"]}, "maxPerTask": 4}])
    assert sample_count(two_tasks)[0] == 8
    capped, source = sample_count(data(sources=[{"demo": {"perTask": 96}}], maxSamples=100))
    assert capped == 100 and "maxSamples" in source


def test_files_need_max_samples_or_an_explicit_count():
    vision_flan = [{"uri": "s3://bucket/vision-flan.json", "format": "vision-flan"}]
    count, source = sample_count(data(sources=vision_flan))
    assert count is None and "--samples" in source and f"{VISION_FLAN_INSTANCES:,}" in source
    assert sample_count(data(sources=vision_flan, maxSamples=5000))[0] == 5000
    assert sample_count(data(sources=vision_flan, maxSamples=5000), explicit=7) == (7, "--samples")


def test_flops_and_hours():
    costs = budget(
        LLAVA_13B,
        samples=1280,
        samples_source="--samples",
        epochs=1,
        global_batch=128,
        max_steps=None,
        tokens_per_sample=1000,
        trainable=STAGE,
        gpus=8,
        peak_flops=312e12,
        mfu=0.5,
    )
    assert (costs.steps, costs.tokens) == (10, 1_280_000)
    assert costs.flops == pytest.approx(1280 * train_flops(LLAVA_13B, STAGE).of_sample(1000))
    assert costs.gpu_hours == pytest.approx(costs.flops / (312e12 * 0.5) / 3600)
    assert costs.wall_hours == pytest.approx(costs.gpu_hours / 8)
    unknown = budget(
        LLAVA_13B,
        samples=None,
        samples_source="?",
        epochs=1,
        global_batch=128,
        max_steps=None,
        tokens_per_sample=1000,
        trainable=STAGE,
        gpus=8,
        peak_flops=312e12,
    )
    assert unknown.steps is None and unknown.gpu_hours is None


def test_flops_follow_the_trainable_parts():
    def flops(trainable: tuple[str, ...]) -> float:
        return budget(
            LLAVA_13B,
            samples=128,
            samples_source="--samples",
            epochs=1,
            global_batch=128,
            max_steps=None,
            tokens_per_sample=1000,
            trainable=trainable,
            gpus=1,
            peak_flops=312e12,
        ).flops

    # Projector only: the frozen language model still backpropagates activation gradients (4N, not 6N).
    assert flops(("projector",)) < flops(STAGE) < flops(("vision_tower", "projector", "language_model"))
