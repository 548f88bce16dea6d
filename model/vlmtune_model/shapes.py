"""Model shapes: the sizes that define a LLaVA model, as plain data (no torch, no weights, no downloads).

The one home of every shape vlmtune knows: the `tiny` preset the builder makes, the LLaVA-1.5
shapes the benchmarks and the planner size, and the known hub ids. The builder turns a shape into a
`LlavaConfig` (`builder.llava_config`); the planner, the FLOPs model and the processor facts (image
size, image tokens) read the same shape, so none of them can disagree with what is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "tie_word_embeddings",
)
VISION_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "image_size",
    "patch_size",
)


@dataclass(frozen=True)
class Shape:
    """A LLaVA model's sizes: CLIP vision tower (`CLIPVisionConfig` keys) and language model (`LlamaConfig` keys)."""

    name: str
    vision: Mapping[str, Any] = field(default_factory=dict)
    text: Mapping[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.vision["image_size"])

    @property
    def image_tokens(self) -> int:
        """Placeholder tokens per image with LLaVA-1.5's feature selection: one per patch, no CLS."""
        return (self.image_size // int(self.vision["patch_size"])) ** 2

    def with_image_size(self, size: int) -> Shape:
        return replace(self, vision={**self.vision, "image_size": size})

    @classmethod
    def of_config(cls, config) -> Shape:
        """The shape of a built model from its transformers `LlavaConfig`."""
        return cls(
            getattr(config, "name_or_path", "") or "model",
            sizes(config.vision_config.to_dict(), VISION_KEYS),
            sizes(config.text_config.to_dict(), TEXT_KEYS),
        )


def sizes(config: Mapping[str, Any], keys: tuple[str, ...]) -> dict:
    """The entries of a Hugging Face config dict that size a model (missing optional ones dropped)."""
    return {key: config[key] for key in keys if config.get(key) is not None}


def _frozen(mapping: dict) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


# The tiny preset: 2-layer CLIP ViT with 8 px patches + 2-layer Llama over the tiny tokenizer's vocabulary
# (BERT WordPiece, 30,522 tokens, plus `<image>`); embeddings tied. A few million parameters.
TINY_VOCAB = 30_523
TINY = Shape(
    "tiny",
    _frozen(
        dict(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=64,
            patch_size=8,
            projection_dim=64,
        )
    ),
    _frozen(
        dict(
            vocab_size=TINY_VOCAB,
            hidden_size=128,
            intermediate_size=384,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
        )
    ),
)

CLIP_L14_336 = _frozen(
    dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
    )
)
LLAMA_7B = _frozen(
    dict(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
    )
)
# Vicuna-13B v1.5 has the Llama-2-13B shape.
LLAMA_13B = _frozen(
    dict(
        vocab_size=32000,
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        max_position_embeddings=4096,
    )
)
# Sheared-LLaMA-2.7B (princeton-nlp): Llama-2-7B pruned to 32 layers of width 2560, the same vocabulary.
LLAMA_2_7B_SHEARED = _frozen(
    dict(
        vocab_size=32000,
        hidden_size=2560,
        intermediate_size=6912,
        num_hidden_layers=32,
        num_attention_heads=20,
        num_key_value_heads=20,
        max_position_embeddings=4096,
    )
)

# llava-hf pads the vocabulary with 64 rows; LLaVA-1.5-13B as the paper composes it keeps Vicuna's 32,000.
LLAVA_7B = Shape("llava-7b", CLIP_L14_336, _frozen({**LLAMA_7B, "vocab_size": 32064}))
LLAVA_13B = Shape("llava-13b", CLIP_L14_336, LLAMA_13B)
# The largest LLaVA-1.5 composition whose full fine-tune fits one 80 GB GPU under DeepSpeed (fp32 master weights and
# Adam states: 16 bytes per trained parameter): `vlmtune bench e2e` runs it through the whole platform.
LLAVA_2_7B = Shape("llava-2.7b", CLIP_L14_336, LLAMA_2_7B_SHEARED)
SHAPES: Mapping[str, Shape] = MappingProxyType({shape.name: shape for shape in (LLAVA_7B, LLAVA_13B, LLAVA_2_7B, TINY)})

# Hub ids whose shapes are known without a download.
LANGUAGE_MODELS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "lmsys/vicuna-7b-v1.5": LLAMA_7B,
        "lmsys/vicuna-13b-v1.5": LLAMA_13B,
        "meta-llama/Llama-2-7b-hf": LLAMA_7B,
        "meta-llama/Llama-2-7b-chat-hf": LLAMA_7B,
        "meta-llama/Llama-2-13b-hf": LLAMA_13B,
        "meta-llama/Llama-2-13b-chat-hf": LLAMA_13B,
    }
)
VISION_TOWERS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "openai/clip-vit-large-patch14-336": CLIP_L14_336,
        "openai/clip-vit-large-patch14": _frozen({**CLIP_L14_336, "image_size": 224}),
    }
)
LLAVA_MODELS: Mapping[str, Shape] = MappingProxyType(
    {
        "llava-hf/llava-1.5-7b-hf": LLAVA_7B,
        "llava-hf/llava-1.5-13b-hf": Shape("llava-13b", CLIP_L14_336, _frozen({**LLAMA_13B, "vocab_size": 32064})),
        "liuhaotian/llava-v1.5-7b": Shape("llava-7b", CLIP_L14_336, LLAMA_7B),
        "liuhaotian/llava-v1.5-13b": LLAVA_13B,
    }
)
