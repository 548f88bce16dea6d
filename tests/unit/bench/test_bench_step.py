"""`bench step`: the single-process path at tiny size (figures, not timings, are checked).

The FLOPs model and the peak table it divides by are tested in tests/unit/train/test_flops.py.
"""

from __future__ import annotations

import pytest

from vlmtune_model.shapes import TINY
from vlmtune.bench.step import TRAINABLE, bench_gpu, report
from vlmtune.train.flops import train_flops


def test_single_process_path_runs_the_train_step_on_cpu():
    result = bench_gpu("tiny", micro_batch=2, seq_len=96, accumulation=2, steps=2, warmup=1, device_type="cpu",
                       checkpoint_layers=1)
    assert result["tokens_per_s"] > 0 and result["samples_per_s"] > 0
    assert result["checkpoint_layers"] == 1 and result["mfu"] is None
    flops = train_flops(TINY, TRAINABLE).of_sample(96) * result["samples_per_s"]
    assert result["model_tflops_per_s"] == pytest.approx(flops / 1e12)
    assert "tiny on cpu" in report(result, as_json=False)


def test_unknown_shape_is_refused():
    with pytest.raises(KeyError):
        bench_gpu("no-such-shape", 1, 96, 1, 1, 0, device_type="cpu")


def test_more_checkpoint_layers_than_the_shape_has_is_refused():
    with pytest.raises(ValueError, match="checkpointLayers: 3 is not between 1 and the model's 2 decoder layers"):
        bench_gpu("tiny", 1, 96, 1, 1, 0, device_type="cpu", checkpoint_layers=3)
