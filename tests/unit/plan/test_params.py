"""Parameter counts equal those of the real transformers modules and DeepSpeed's own counting."""

from __future__ import annotations

import pytest
from vlmtune.bench.shapes import LLAVA_7B, LLAVA_13B, TINY, Shape
from vlmtune.plan.params import model_size

torch = pytest.importorskip("torch")


def build(shape: Shape):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    config = LlavaConfig(vision_config=CLIPVisionConfig(**shape.vision), text_config=LlamaConfig(**shape.text),
                         image_token_id=0)
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
