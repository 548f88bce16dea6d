"""`bench step`: the FLOPs model and the single-process path, at tiny size (figures, not timings, are checked)."""

from __future__ import annotations

import pytest

from vlmtune.bench.shapes import LLAVA_7B, TINY, peak_flops, train_flops_per_sample
from vlmtune.bench.step import bench_gpu, report


def test_flops_per_token_of_the_7b_shape_is_about_six_times_its_parameters():
    per_token = train_flops_per_sample(LLAVA_7B, 2048) / 2048
    # 6 x 6.74 B language-model parameters, plus attention and the frozen vision tower.
    assert 40e9 < per_token < 44e9


def test_language_model_flops_are_linear_plus_quadratic_in_length():
    vision_and_projector = train_flops_per_sample(TINY, 0)
    one, two, three = (train_flops_per_sample(TINY, n) - vision_and_projector for n in (100, 200, 300))
    assert three - 2 * two + one == pytest.approx(2 * (two - 2 * one) / 2, rel=1e-9)  # second difference is constant
    assert two > 2 * one  # causal attention adds a quadratic term


def test_peak_flops_by_device_name():
    assert peak_flops("NVIDIA H200") == peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("cpu") is None


def test_single_process_path_runs_the_train_step_on_cpu():
    result = bench_gpu("tiny", micro_batch=2, seq_len=96, accumulation=2, steps=2, warmup=1, device_type="cpu",
                       checkpoint_layers=1)
    assert result["tokens_per_s"] > 0 and result["samples_per_s"] > 0
    assert result["checkpoint_layers"] == 1 and result["mfu"] is None
    assert "tiny on cpu" in report(result, as_json=False)


def test_unknown_shape_is_refused():
    with pytest.raises(KeyError):
        bench_gpu("no-such-shape", 1, 96, 1, 1, 0, device_type="cpu")
