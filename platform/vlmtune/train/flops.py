"""Model FLOPs of training a LLaVA shape and the peak FLOP/s of known GPUs: the two halves of MFU.

One implementation behind `vlmtune bench step`, `vlmtune plan` and the train loop's metrics. Model
FLOPs count the model's math once (PaLM's definition of MFU): what activation checkpointing
recomputes is not counted, so checkpointing shows up as a lower MFU, as docs/benchmarks.md compares.
Pure arithmetic: no torch, nothing downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmtune_model.shapes import Shape

PARTS = ("vision_tower", "projector", "language_model")
"""LLaVA's parts in the order data flows through them; gradients flow back to the first one that trains."""

# Dense peak FLOP/s (no sparsity) per device-name fragment (as torch.cuda.get_device_name() reports it)
# and precision, from NVIDIA's datasheets; SXM parts unless the fragment names another form factor.
# fp16 runs at the bf16 rate on all of them. fp32 is the CUDA-core rate: PyTorch leaves TF32 matmuls off
# by default. The longest matching fragment wins ("H100 PCIe" before "H100", "L40S" before "L4").
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200 NVL": {"bf16": 835e12, "fp32": 60e12},
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "H100 NVL": {"bf16": 835e12, "fp32": 60e12},
    "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362e12, "fp32": 91.6e12},
    "L4": {"bf16": 121e12, "fp32": 30.3e12},
    "A10G": {"bf16": 125e12},  # AWS publishes no fp32 figure for its A10G
}


def peak_flops(device_name: str, precision: str = "bf16") -> float | None:
    """Dense peak FLOP/s of one device at `precision` (bf16, fp16 or fp32).

    Returns:
        None for a CPU, an unknown GPU or a precision the table has no figure for: MFU is then
        unknown rather than guessed.
    """
    rate = "bf16" if precision in ("bf16", "fp16") else precision
    for fragment in sorted(PEAK_FLOPS, key=len, reverse=True):
        if fragment in device_name:
            return PEAK_FLOPS[fragment].get(rate)
    return None


@dataclass(frozen=True)
class TrainFlops:
    """Model FLOPs of one training pass (forward + backward) over a batch of samples:
    `per_token x tokens + per_token_squared x sum(tokens_i^2) + per_image x images`, where tokens_i
    counts sample i's tokens (image tokens included) and the square term is causal attention."""

    per_token: float
    per_token_squared: float
    per_image: float

    def of_batch(self, tokens: int, token_squares: int, images: int) -> float:
        return self.per_token * tokens + self.per_token_squared * token_squares + self.per_image * images

    def of_sample(self, tokens: int, images: int = 1) -> float:
        return self.of_batch(tokens, tokens * tokens, images)


def train_flops(shape: Shape, trainable: Iterable[str], adapters: int = 0) -> TrainFlops:
    """FLOPs of training `shape` with the `trainable` parts (see PARTS) updated, and `adapters`
    LoRA weights inside its language model (whose base weights then stay frozen).

    A matmul with N weights costs 2N per token forward; backward costs 2N for its input's gradient
    where gradients flow (at or after the first trainable part) and 2N for its weight gradient where
    it trains: 6N for a trained part, 4N for a frozen one gradients pass through, 2N before them.
    Attention scores hold no weights: 4 x hidden per token pair forward (QK^T and AV), halved by
    the language model's causal mask; backward twice the forward where gradients flow. Embeddings
    are lookups; the lm_head is a matmul even when tied to them. The vision tower sees the image's
    patches plus CLS; the projector the image tokens. Adapters train: 6 per weight and token.

    Raises:
        ValueError: a trainable part that LLaVA does not have, or adapters beside a trained language model.
    """
    trained = set(trainable)
    if unknown := trained - set(PARTS):
        raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {PARTS}")
    if adapters and "language_model" in trained:
        raise ValueError("with LoRA adapters the language model's own weights are frozen: leave it out of trainable")
    adapted = {"language_model"} if adapters else set()
    flows = {part: bool((trained | adapted) & set(PARTS[: index + 1])) for index, part in enumerate(PARTS)}

    def matmul(part: str) -> int:
        return 2 + 2 * flows[part] + 2 * (part in trained)

    def scores(part: str) -> int:
        return 1 + 2 * flows[part]

    t, v = shape.text, shape.vision
    language = (
        _transformer_params(
            t["hidden_size"],
            t["intermediate_size"],
            t["num_hidden_layers"],
            t["num_attention_heads"],
            t.get("num_key_value_heads") or t["num_attention_heads"],
            gated=True,
        )
        + t["vocab_size"] * t["hidden_size"]
    )
    vision = _transformer_params(
        v["hidden_size"],
        v["intermediate_size"],
        v["num_hidden_layers"],
        v["num_attention_heads"],
        v["num_attention_heads"],
        gated=False,
    )
    projector = v["hidden_size"] * t["hidden_size"] + t["hidden_size"] ** 2  # mlp2x_gelu
    patches = shape.image_tokens + 1
    per_image = (
        matmul("vision_tower") * vision * patches
        + scores("vision_tower") * 4 * v["num_hidden_layers"] * v["hidden_size"] * patches**2
        + matmul("projector") * projector * shape.image_tokens
    )
    return TrainFlops(
        per_token=float(matmul("language_model") * language + 6 * adapters),
        per_token_squared=float(scores("language_model") * 2 * t["num_hidden_layers"] * t["hidden_size"]),
        per_image=float(per_image),
    )


def _transformer_params(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, gated: bool) -> int:
    """Matmul weights of a stack of transformer layers (biases and norms are negligible FLOPs)."""
    head_dim = hidden // heads
    attention = hidden * hidden * 2 + 2 * hidden * kv_heads * head_dim
    mlp = (3 if gated else 2) * hidden * intermediate
    return layers * (attention + mlp)


def mfu(flops: float, seconds: float, devices: int, peak: float | None) -> float | None:
    """Model-FLOPs utilisation: the FLOPs `devices` did in `seconds`, over their combined peak."""
    if peak is None or seconds <= 0 or devices <= 0:
        return None
    return flops / (seconds * devices * peak)
