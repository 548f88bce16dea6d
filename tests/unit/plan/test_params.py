"""Parameter counts equal those of the real transformers modules and DeepSpeed's own counting."""

from __future__ import annotations

import pytest

from vlmtune.plan.params import model_size
from vlmtune_model.shapes import LLAVA_7B, LLAVA_13B, TINY, Shape

torch = pytest.importorskip("torch")


def build(shape: Shape):
    from transformers import LlavaForConditionalGeneration

    from vlmtune_model.builder import shape_config

    config = shape_config(shape, image_token_id=0)
    return LlavaForConditionalGeneration(config)


@pytest.mark.parametrize("tied", [False, True])
def test_counts_equal_a_real_llava_and_deepspeeds_model_to_params(tied):
    from deepspeed.runtime.zero.stage3 import model_to_params

    from vlmtune_model.trainable import part_modules

    shape = Shape("tiny", TINY.vision, {**TINY.text, "tie_word_embeddings": tied})
    model = build(shape)
    real = {}
    for part, modules in part_modules(model).items():
        # A tied lm_head is the embedding tensor again: count each tensor once.
        tensors = {p.data_ptr(): p.numel() for module in modules for p in module.parameters()}
        real[part] = sum(tensors.values())
    size = model_size(shape)
    assert size.parts == real
    assert (size.total, size.largest_layer) == model_to_params(model)


def test_published_sizes_of_the_paper_models():
    thirteen, seven = model_size(LLAVA_13B), model_size(LLAVA_7B)
    assert thirteen.parts["vision_tower"] == 303_507_456  # CLIP ViT-L/14-336 vision model
    assert thirteen.parts["language_model"] == 13_015_864_320  # Llama-2-13B / Vicuna-13B v1.5
    assert thirteen.parts["projector"] == 1024 * 5120 + 5120 + 5120 * 5120 + 5120
    assert thirteen.largest_layer == 32000 * 5120  # embeddings / lm_head
    # Llama-2-7B has 6,738,415,616; llava-hf's vocabulary adds 64 rows to embeddings and lm_head.
    assert seven.parts["language_model"] == 6_738_415_616 + 2 * 64 * 4096


def test_trainable_and_frozen_split():
    size = model_size(LLAVA_13B)
    trainable = ("projector", "language_model")
    assert size.frozen(trainable) == size.parts["vision_tower"]
    assert size.trainable(trainable) + size.frozen(trainable) == size.total


@pytest.mark.parametrize(
    "targets", [("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), ("q_proj", "v_proj")]
)
def test_lora_counts_equal_the_adapters_peft_injects(targets):
    pytest.importorskip("peft")
    from vlmtune.plan.params import lora_parameters
    from vlmtune_model import build_tiny
    from vlmtune_model.lora import LoraSettings, apply_lora

    built = apply_lora(build_tiny(), LoraSettings(rank=4, target_modules=targets))
    real = sum(p.numel() for name, p in built.model.named_parameters() if ".lora_" in name)
    config = built.model.config.text_config
    text = {
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
    }
    assert lora_parameters(text, 4, targets) == real


def test_lora_trains_adapters_instead_of_the_language_model():
    size = model_size(LLAVA_7B)
    lora = size.with_lora(1000)
    parts = ("projector", "language_model")
    assert lora.trained_parts(parts) == ("projector",)
    assert lora.trainable(parts) == size.parts["projector"] + 1000
    assert lora.frozen(parts) == size.parts["vision_tower"] + size.parts["language_model"]
    assert lora.total == size.total + 1000
