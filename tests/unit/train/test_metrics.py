"""Metric rows: what a step counts, how a window reduces to rates and MFU, the epoch."""

from __future__ import annotations

import time

import pytest
import torch

from vlmtune.bench.step import synthetic_batches
from vlmtune.train.flops import train_flops
from vlmtune.train.metrics import SCALARS, FlopsMeter, MetricsWindow, epoch_of
from vlmtune.train.plain_engine import PlainEngine
from vlmtune.train.step import StepStats, train_step
from vlmtune_model import build_tiny
from vlmtune_model.shapes import TINY, Shape

STAGE = ("projector", "language_model")


def test_a_step_counts_tokens_their_squares_and_images():
    model = build_tiny(seed=0).model.train()
    micro = synthetic_batches(
        TINY, micro_batch=2, seq_len=80, count=1, image_token_id=model.config.image_token_index, dtype=torch.float32
    )[0]
    micro.attention_mask[1, 70:] = 0  # the second sample is 70 tokens long
    engine = PlainEngine(model, torch.optim.SGD(model.parameters(), lr=0.0), accumulation=2)
    stats = train_step(engine, [micro, micro], torch.device("cpu"), torch.float32)
    assert (stats.tokens, stats.token_squares, stats.images) == (2 * 150, 2 * (80**2 + 70**2), 4)


def test_the_built_model_costs_what_the_plan_says_it_does():
    shape = Shape.of_config(build_tiny(seed=0).model.config)
    assert train_flops(shape, STAGE) == train_flops(TINY, STAGE)
    assert shape.image_tokens == TINY.image_tokens == 64


def test_window_reduces_to_rates_and_mfu():
    meter = FlopsMeter(train_flops(TINY, STAGE), peak=1e12)
    window = MetricsWindow(started=time.perf_counter() - 10.0)
    window.add(StepStats(loss=2.0, tokens=300, samples=4, skipped=1, truncated=0, token_squares=22_000, images=3))
    window.add(StepStats(loss=1.0, tokens=100, samples=4, skipped=0, truncated=1, token_squares=2_500, images=4))
    row = window.reduce(torch.device("cpu"), meter)
    assert (row["loss"], row["samples"], row["tokens"], row["skipped"], row["truncated"]) == (1.5, 8, 400, 1, 1)
    assert row["tokens_per_s"] == pytest.approx(40, rel=1e-3) and row["samples_per_s"] == pytest.approx(0.8, rel=1e-3)
    flops = meter.flops.of_batch(400, 24_500, 7)
    assert row["mfu"] == pytest.approx(flops / (10.0 * 1e12), rel=1e-3)


def test_mfu_is_null_without_a_known_peak():
    meter = FlopsMeter.for_model(build_tiny(seed=0).model, STAGE, torch.device("cpu"), "fp32")
    assert meter.peak is None and meter.flops == train_flops(TINY, STAGE)
    window = MetricsWindow()
    window.add(StepStats(loss=1.0, tokens=10, samples=1, skipped=0, truncated=0, token_squares=100, images=1))
    assert window.reduce(torch.device("cpu"), meter)["mfu"] is None


def test_epoch_is_fractional():
    assert epoch_of(5, 10) == 0.5 and epoch_of(30, 10) == 3.0 and epoch_of(1, 3) == 0.3333
    assert epoch_of(5, None) is None


def test_a_lora_model_is_metered_by_its_adapters():
    from vlmtune_model import LoraSettings, apply_lora

    built = apply_lora(build_tiny(seed=0), LoraSettings(rank=4, alpha=8.0))
    adapters = sum(p.numel() for name, p in built.model.named_parameters() if "lora_" in name)
    meter = FlopsMeter.for_model(built.model, STAGE, torch.device("cpu"), "fp32")
    assert adapters > 0 and meter.flops == train_flops(TINY, ("projector",), adapters)


def test_window_sums_the_time_steps_waited_for_data():
    window = MetricsWindow(started=time.perf_counter() - 4.0)
    assert window.reduce(torch.device("cpu"))["data_wait_s"] == 0.0
    window.add_data_wait(0.25)
    window.add_data_wait(0.5)
    row = window.reduce(torch.device("cpu"))
    assert row["data_wait_s"] == pytest.approx(0.75)
    assert "data_wait_s" in SCALARS  # TensorBoard and MLflow chart it too
