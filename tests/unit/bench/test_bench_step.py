"""`bench step`: the single-process path at tiny size (figures, not timings, are checked).

The FLOPs model and the peak table it divides by are tested in tests/unit/train/test_flops.py.
"""

from __future__ import annotations

import pytest

from vlmtune.bench.step import TRAINABLE, bench_gpu, report
from vlmtune.train.flops import train_flops
from vlmtune_model.shapes import TINY


def test_single_process_path_runs_the_train_step_on_cpu():
    result = bench_gpu(
        "tiny", micro_batch=2, seq_len=96, accumulation=2, steps=2, warmup=1, device_type="cpu", checkpoint_layers=1
    )
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


def test_levers_and_ragged_samples_on_cpu():
    from vlmtune.train.levers import Levers

    padded = bench_gpu(
        "tiny", micro_batch=3, seq_len=96, accumulation=1, steps=1, warmup=0, device_type="cpu", ragged=True
    )
    packed = bench_gpu(
        "tiny",
        micro_batch=3,
        seq_len=96,
        accumulation=1,
        steps=1,
        warmup=0,
        device_type="cpu",
        ragged=True,
        levers=Levers(pack=True, chunked_loss=True),
    )
    assert 0 < padded["padding_fraction"] == packed["padding_fraction"] < 1  # the same seeded lengths
    assert packed["pack_samples"] and packed["chunked_loss"] and packed["attention"] == "sdpa"
    assert "padding" in report(packed, as_json=False) and "pack_samples" in report(packed, as_json=False)


def test_step_work_counts_real_tokens_only():
    from vlmtune.bench.step import step_work, synthetic_batches

    full = synthetic_batches(TINY, 2, 96, 1, image_token_id=TINY.text["vocab_size"] - 1, dtype=None)
    ragged = synthetic_batches(TINY, 2, 96, 1, image_token_id=TINY.text["vocab_size"] - 1, dtype=None, ragged=True)
    lengths = ragged[0].attention_mask.sum(dim=1)
    work = step_work(TINY, ragged)
    assert work["tokens"] == int(lengths.sum()) and work["padding_fraction"] == 1 - work["tokens"] / (2 * 96)
    assert work["flops"] == train_flops(TINY, TRAINABLE).of_batch(work["tokens"], int((lengths**2).sum()), 2)
    assert step_work(TINY, full) == {
        "tokens": 192,
        "flops": 2 * train_flops(TINY, TRAINABLE).of_sample(96),
        "padding_fraction": 0.0,
    }


def test_synthetic_text_never_holds_an_extra_image_token():
    from vlmtune.bench.step import synthetic_batches

    token = 5_000  # inside the range text is drawn from
    (micro,) = synthetic_batches(TINY, 4, 512, 1, image_token_id=token, dtype=None)
    assert int((micro.input_ids == token).sum(dim=1).max()) == TINY.image_tokens
