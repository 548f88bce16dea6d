"""Model FLOPs of training, the peak table, and MFU: hand-computed cases."""

from __future__ import annotations

import pytest

from vlmtune.train.flops import mfu, peak_flops, train_flops
from vlmtune_model.shapes import LLAVA_7B, TINY, Shape

SMALL = Shape(
    "small",
    vision=dict(
        hidden_size=2, intermediate_size=4, num_hidden_layers=1, num_attention_heads=1, image_size=4, patch_size=2
    ),
    text=dict(
        vocab_size=10,
        hidden_size=4,
        intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
    ),
)
STAGE = ("projector", "language_model")
# Matmul weights of SMALL: language model 2 layers x (q,o 2x16 + k,v 2x16 + gate/up/down 3x32) + lm_head 40 = 360;
# vision tower 1 layer x (4 x 4 attention + 2 x 8 MLP) = 32; projector 2x4 + 4x4 = 24. 4 image tokens, 5 patches.


def test_stage_flops_of_a_small_shape_by_hand():
    flops = train_flops(SMALL, STAGE)
    assert flops.per_token == 6 * 360
    assert flops.per_token_squared == 3 * 2 * 2 * 4  # fwd+bwd x causal 2h per pair x layers
    # Frozen vision tower: forward only (2 x 32 x 5 patches + 4h x 25 pairs); projector trains: 6 x 24 x 4.
    assert flops.per_image == 2 * 32 * 5 + 4 * 2 * 25 + 6 * 24 * 4
    assert flops.of_sample(16) == 2160 * 16 + 48 * 16**2 + 1096
    assert flops.of_batch(tokens=16 + 8, token_squares=16**2 + 8**2, images=1) == 2160 * 24 + 48 * 320 + 1096


def test_frozen_parts_cost_by_where_gradients_flow():
    projector_only = train_flops(SMALL, ("projector",))
    assert projector_only.per_token == 4 * 360  # frozen LM: input gradients only
    assert projector_only.per_token_squared == 48
    assert projector_only.per_image == 2 * 32 * 5 + 4 * 2 * 25 + 6 * 24 * 4
    lm_only = train_flops(SMALL, ("language_model",))
    assert lm_only.per_image == 2 * 32 * 5 + 4 * 2 * 25 + 2 * 24 * 4  # nothing before the LM backpropagates
    everything = train_flops(SMALL, ("vision_tower", "projector", "language_model"))
    assert everything.per_image == 6 * 32 * 5 + 3 * 4 * 2 * 25 + 6 * 24 * 4
    with pytest.raises(ValueError, match="unknown trainable parts"):
        train_flops(SMALL, ("lora",))


def test_the_7b_shape_keeps_the_figure_docs_benchmarks_used():
    per_sample = train_flops(LLAVA_7B, STAGE).of_sample(2048)
    assert per_sample == 84_943_225_061_376  # the benchmark's MFU figures were computed with this
    assert 40e9 < per_sample / 2048 < 44e9  # about 6 x 6.74 B language-model parameters per token


def test_language_model_flops_are_linear_plus_quadratic_in_length():
    flops = train_flops(TINY, STAGE)
    one, two, three = (flops.of_sample(n) - flops.of_sample(0) for n in (100, 200, 300))
    assert three - 2 * two + one == pytest.approx(2 * 100**2 * flops.per_token_squared)
    assert two > 2 * one


@pytest.mark.parametrize(
    ("name", "precision", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H100 PCIe", "bf16", 756e12),
        ("NVIDIA H100 NVL", "fp16", 835e12),
        ("NVIDIA H200", "bf16", 989e12),
        ("NVIDIA H200", "fp32", 67e12),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
        ("NVIDIA A100 80GB PCIe", "fp32", 19.5e12),
        ("NVIDIA L40S", "bf16", 362e12),
        ("NVIDIA L4", "bf16", 121e12),
        ("NVIDIA A10G", "bf16", 125e12),
    ],
)
def test_peak_by_device_name_and_precision(name, precision, peak):
    assert peak_flops(name, precision) == peak


def test_unknown_devices_have_no_peak():
    assert peak_flops("cpu", "fp32") is None
    assert peak_flops("NVIDIA GeForce GTX 1080", "bf16") is None
    assert peak_flops("NVIDIA A10G", "fp32") is None  # no published figure: not guessed


def test_mfu_divides_by_every_device_peak():
    assert mfu(flops=989e12 * 10 * 0.4 * 8, seconds=10, devices=8, peak=989e12) == pytest.approx(0.4)
    assert mfu(1e12, 10, 8, None) is None
    assert mfu(1e12, 0, 8, 989e12) is None


def test_lora_adapters_train_while_the_language_model_only_passes_gradients():
    flops = train_flops(SMALL, ("projector",), adapters=50)
    assert flops.per_token == 4 * 360 + 6 * 50 and flops.per_token_squared == 48
    # Adapters alone still send gradients through the whole language model, not into the projector.
    alone = train_flops(SMALL, (), adapters=50)
    assert alone.per_token == 4 * 360 + 6 * 50 and alone.per_image == 2 * 32 * 5 + 4 * 2 * 25 + 2 * 24 * 4
    with pytest.raises(ValueError, match="frozen"):
        train_flops(SMALL, STAGE, adapters=50)
