"""Model shapes for benchmarks and the FLOPs they cost (no weights, no downloads)."""

from __future__ import annotations

from dataclasses import dataclass

# Dense bf16 peak (no sparsity) by device name fragment, in FLOP/s.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


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
    vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                image_size=336, patch_size=14, projection_dim=768),
    text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
              num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096),
)
TINY = Shape(
    "tiny",
    vision=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                image_size=64, patch_size=8, projection_dim=64),
    text=dict(vocab_size=30524, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
)
# LLaVA-1.5-13B as the paper composes it: Vicuna-13B v1.5 (Llama-2-13B shape) + the same CLIP ViT-L/14-336.
LLAVA_13B = Shape(
    "llava-13b",
    vision=LLAVA_7B.vision,
    text=dict(vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
              num_attention_heads=40, num_key_value_heads=40, max_position_embeddings=4096),
)
SHAPES = {shape.name: shape for shape in (LLAVA_7B, LLAVA_13B, TINY)}


def train_flops_per_sample(shape: Shape, seq_len: int, trainable_vision: bool = False) -> float:
    """Model FLOPs of one training sample (forward + backward, no recomputation counted).

    Language model: 6 x params per token plus attention scores (12 x layers x hidden x T^2 / 2 for
    causal masks, forward + backward); frozen vision tower: forward only (2 x params per patch);
    projector: 6 x params per image token.
    """
    t, v = shape.text, shape.vision
    lm_params = _transformer_params(t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"],
                                    t["num_attention_heads"], t["num_key_value_heads"], gated=True)
    lm_params += 2 * t["vocab_size"] * t["hidden_size"]  # embeddings are lookups; the head is a matmul
    lm = 6 * (lm_params - t["vocab_size"] * t["hidden_size"]) * seq_len
    lm += 6 * t["num_hidden_layers"] * t["hidden_size"] * seq_len * seq_len  # causal attention, fwd+bwd
    patches = shape.image_tokens + 1
    vision_params = _transformer_params(v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"],
                                        v["num_attention_heads"], v["num_attention_heads"], gated=False)
    vision = (6 if trainable_vision else 2) * vision_params * patches
    vision += (6 if trainable_vision else 2) * 2 * v["num_hidden_layers"] * v["hidden_size"] * patches * patches
    projector = 6 * (v["hidden_size"] * t["hidden_size"] + t["hidden_size"] ** 2) * shape.image_tokens
    return float(lm + vision + projector)


def _transformer_params(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int,
                        gated: bool) -> int:
    head_dim = hidden // heads
    attention = hidden * hidden * 2 + 2 * hidden * kv_heads * head_dim
    mlp = (3 if gated else 2) * hidden * intermediate
    return layers * (attention + mlp)


def peak_flops(device_name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16.items() if key in device_name), None)
