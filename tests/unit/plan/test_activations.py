"""Activation formulas: hand-computed cases, and the tensors real transformers layers save."""

from __future__ import annotations

import pytest

from vlmtune.plan.estimate import Activations, activation_bytes
from vlmtune.plan.memory import (
    GIB,
    Setup,
    decoder_layer_bytes,
    deepspeed_buffer_bytes,
    held_logits_bytes,
    logits_bytes,
    overhead_bytes,
    stack_bytes,
    vision_layer_bytes,
)
from vlmtune_model.shapes import LLAVA_7B, Shape

torch = pytest.importorskip("torch")

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


def setup(checkpointing: bool, precision: str = "bf16", stage: int = 2, layers: int | None = None) -> Setup:
    return Setup(
        ranks=1,
        micro_batch=1,
        global_batch=1,
        seq_len=16,
        precision=precision,
        checkpointing=checkpointing,
        zero_stage=stage,
        checkpoint_layers=layers,
    )


def test_layer_formulas_on_small_numbers():
    assert decoder_layer_bytes(tokens=2, hidden=10, intermediate=20) == 2 * (24 * 10 + 8 * 20)
    assert vision_layer_bytes(tokens=3, hidden=10, intermediate=40) == 3 * (16 * 10 + 6 * 40)
    assert stack_bytes(100, 10, layers=3, checkpointed_layers=0) == 300
    assert stack_bytes(100, 10, layers=3, checkpointed_layers=3) == 30
    assert stack_bytes(100, 10, layers=3, checkpointed_layers=1) == 10 + 200
    assert logits_bytes(tokens=3, vocab=5) == 180
    assert held_logits_bytes(3, 5, mixed=True) == 30 and held_logits_bytes(3, 5, mixed=False) == 60


def test_activations_of_a_small_shape_by_hand():
    # 16 tokens; decoder layer 16 x (24*4 + 8*8) = 2560; final norm + lm_head input 16 x 8 x 4 = 512;
    # projector 4 image tokens x (2*2 + 4*4) = 80; loss 12 x 16 x 10 = 1920; held logits 2 x 160 = 320.
    full = activation_bytes(SMALL, ("projector", "language_model"), setup(checkpointing=False))
    assert full == Activations(kept=2 * 2560 + 512 + 80, loss=1920, held_logits=320, recomputed_layer=0)
    assert full.total == 5712 + 1920
    # Checkpointing keeps each layer's input (2 x 16 x 4 = 128); the recomputed layer (2560) plus the
    # held logits outweigh the loss peak, and the two peaks do not add up.
    checkpointed = activation_bytes(SMALL, ("projector", "language_model"), setup(checkpointing=True))
    assert checkpointed.kept == 2 * 128 + 512 + 80
    assert checkpointed.peak == 320 + 2560 and checkpointed.total == 848 + 2880


def test_selective_checkpointing_lies_between_none_and_all():
    parts = ("projector", "language_model")
    full = activation_bytes(LLAVA_7B, parts, setup(checkpointing=False))
    every = activation_bytes(LLAVA_7B, parts, setup(checkpointing=True))
    by_count = [activation_bytes(LLAVA_7B, parts, setup(checkpointing=True, layers=n)) for n in range(0, 33)]
    assert by_count[0] == full and by_count[32] == every
    kept = [acts.kept for acts in by_count]
    assert all(fewer > more for fewer, more in zip(kept, kept[1:]))  # fewer checkpointed layers keep more
    # Each layer left out of checkpointing keeps its full activations instead of its input.
    layer = decoder_layer_bytes(16, 4096, 11008)
    assert kept[16] - kept[17] == layer - 2 * 16 * 4096
    assert all(acts.recomputed_layer == layer for acts in by_count[1:])


def test_frozen_parts_before_the_language_model_keep_nothing():
    lm_only = activation_bytes(SMALL, ("language_model",), setup(checkpointing=False))
    with_projector = activation_bytes(SMALL, ("projector", "language_model"), setup(checkpointing=False))
    assert with_projector.kept - lm_only.kept == 80
    with_vision = activation_bytes(SMALL, ("vision_tower", "projector"), setup(checkpointing=False))
    # 5 patches (4 + CLS) x (16*2 + 6*4) = 280 for the one vision layer.
    assert with_vision.kept - with_projector.kept == 280


def test_fp32_doubles_the_16bit_activations():
    bf16 = activation_bytes(SMALL, ("language_model",), setup(False))
    fp32 = activation_bytes(SMALL, ("language_model",), setup(False, precision="fp32"))
    assert fp32.kept == 2 * bf16.kept and fp32.loss == bf16.loss


def test_overhead_and_deepspeed_buffers():
    assert overhead_bytes(10 * GIB) == 2 * GIB  # 1 GiB context + 10%
    assert deepspeed_buffer_bytes(100, setup(False, stage=2)) == 2 * 500_000_000
    assert deepspeed_buffer_bytes(100, setup(False, stage=3)) == 2 * (500_000_000 + 100)
    assert deepspeed_buffer_bytes(5 * 10**9, setup(False, stage=3)) == 2 * (500_000_000 + 10**9)


def saved_bytes(module, inputs: dict, skip: set[int]) -> int:
    """Bytes of the distinct storages autograd saves for backward, leaving out `skip` (parameters)."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(**inputs)
    return sum(seen.values())


def test_decoder_layer_formula_matches_what_a_real_llama_layer_saves():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaDecoderLayer,
        LlamaRotaryEmbedding,
    )

    h, i, b, s = 256, 688, 2, 512
    config = LlamaConfig(
        hidden_size=h,
        intermediate_size=i,
        num_attention_heads=4,
        num_key_value_heads=4,
        num_hidden_layers=1,
        vocab_size=100,
    )
    config._attn_implementation = "sdpa"
    layer = LlamaDecoderLayer(config, 0).to(torch.bfloat16)
    x = torch.randn(b, s, h, dtype=torch.bfloat16, requires_grad=True)
    positions = torch.arange(s)[None].expand(b, s)
    cos, sin = LlamaRotaryEmbedding(config)(x, positions)
    # Rotary tables are computed once per model and shared by every layer: not this layer's.
    skip = {p.untyped_storage().data_ptr() for p in layer.parameters()} | {
        t.untyped_storage().data_ptr() for t in (cos, sin)
    }
    measured = saved_bytes(
        layer, dict(hidden_states=x, attention_mask=None, position_embeddings=(cos, sin), position_ids=positions), skip
    )
    assert measured == pytest.approx(decoder_layer_bytes(b * s, h, i), rel=0.02)


def test_vision_layer_formula_matches_what_a_real_clip_layer_saves():
    from transformers import CLIPVisionConfig
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer

    h, i, b, s = 256, 1024, 2, 577
    config = CLIPVisionConfig(hidden_size=h, intermediate_size=i, num_attention_heads=4)  # quick_gelu, as CLIP
    config._attn_implementation = "sdpa"
    layer = CLIPEncoderLayer(config).to(torch.bfloat16)
    x = torch.randn(b, s, h, dtype=torch.bfloat16, requires_grad=True)
    skip = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    measured = saved_bytes(layer, dict(hidden_states=x, attention_mask=None), skip)
    assert measured == pytest.approx(vision_layer_bytes(b * s, h, i), rel=0.02)
