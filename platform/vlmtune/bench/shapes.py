"""Model shapes for benchmarks and plans (no weights, no downloads); their FLOPs: `vlmtune.train.flops`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    name: str
    vision: dict
    text: dict

    @property
    def image_tokens(self) -> int:
        return (self.vision["image_size"] // self.vision["patch_size"]) ** 2


LLAVA_7B = Shape(
    "llava-7b",
    vision=dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
    ),
    text=dict(
        vocab_size=32064,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
    ),
)
TINY = Shape(
    "tiny",
    vision=dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=64,
        patch_size=8,
        projection_dim=64,
    ),
    text=dict(
        vocab_size=30524,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    ),
)
# LLaVA-1.5-13B as the paper composes it: Vicuna-13B v1.5 (Llama-2-13B shape) + the same CLIP ViT-L/14-336.
LLAVA_13B = Shape(
    "llava-13b",
    vision=LLAVA_7B.vision,
    text=dict(
        vocab_size=32000,
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        max_position_embeddings=4096,
    ),
)
SHAPES = {shape.name: shape for shape in (LLAVA_7B, LLAVA_13B, TINY)}
