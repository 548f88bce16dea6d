"""Parameter counts of a LLaVA shape, per trainable part, as transformers' modules hold them.

Counted module by module (biases, norms and position embeddings included) so that the totals equal
`sum(p.numel() for p in model.parameters())` of the real `LlavaForConditionalGeneration`; a test
builds one and compares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vlmtune_model.shapes import Shape

PARTS = ("vision_tower", "projector", "language_model")


@dataclass(frozen=True)
class ModelSize:
    parts: dict[str, int]
    """Parameters per part: vision_tower, projector, language_model (lm_head included)."""
    largest_layer: int
    """Parameters of the largest single module (its own tensors, not its children's): what ZeRO-3
    gathers at once. Same definition as DeepSpeed's `model_to_params`."""
    adapters: int = 0
    """LoRA adapter parameters in the language model; when present, they train instead of its own weights."""

    @property
    def total(self) -> int:
        return sum(self.parts.values()) + self.adapters

    def trained_parts(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """The parts whose own weights train: with LoRA the language model trains its adapters only."""
        return tuple(part for part in parts if not (self.adapters and part == "language_model"))

    def trainable(self, parts: tuple[str, ...]) -> int:
        trained = self.trained_parts(parts)
        return sum(count for part, count in self.parts.items() if part in trained) + self.adapters

    def frozen(self, parts: tuple[str, ...]) -> int:
        return self.total - self.trainable(parts)

    def with_lora(self, adapters: int) -> ModelSize:
        return replace(self, adapters=adapters)


def model_size(shape: Shape) -> ModelSize:
    vision, text = _vision_modules(shape.vision), _text_modules(shape.text)
    projector = _projector_modules(shape.vision["hidden_size"], shape.text["hidden_size"])
    return ModelSize(
        parts={"vision_tower": sum(vision), "projector": sum(projector), "language_model": sum(text)},
        largest_layer=max(vision + projector + text),
    )


def lora_parameters(text: dict, rank: int, targets: tuple[str, ...]) -> int:
    """LoRA weights (A: rank x in, B: out x rank) on the named linear layers of every decoder layer.

    Raises:
        ValueError: a target that is not one of the Llama decoder's linear layers.
    """
    h, i = text["hidden_size"], text["intermediate_size"]
    heads = text["num_attention_heads"]
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or h // heads
    shapes = {
        "q_proj": (h, heads * head_dim),
        "k_proj": (h, kv_heads * head_dim),
        "v_proj": (h, kv_heads * head_dim),
        "o_proj": (heads * head_dim, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    if unknown := [name for name in targets if name not in shapes]:
        raise ValueError(f"{unknown} are not linear layers of the language model; it has {sorted(shapes)}")
    return text["num_hidden_layers"] * sum(rank * sum(shapes[name]) for name in targets)


def _vision_modules(v: dict) -> list[int]:
    """CLIPVisionModel: embeddings, pre/post layer norms, `layers` encoder layers (all loaded, even
    though LLaVA reads the second-to-last layer's features)."""
    h, i, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    positions = (v["image_size"] // p) ** 2 + 1  # patches + CLS
    embeddings = [3 * p * p * h, h, positions * h]  # conv (no bias), class embedding, position embedding
    attention = [h * h + h] * 4  # q, k, v, out with biases
    layer = attention + [2 * h, h * i + i, i * h + h, 2 * h]  # norm1, fc1, fc2, norm2
    return embeddings + [2 * h] + layer * v["num_hidden_layers"] + [2 * h]


def _projector_modules(vision_hidden: int, text_hidden: int) -> list[int]:
    """mlp2x_gelu: Linear(vision -> text) + GELU + Linear(text -> text), with biases."""
    return [vision_hidden * text_hidden + text_hidden, text_hidden * text_hidden + text_hidden]


def _text_modules(t: dict) -> list[int]:
    """LlamaForCausalLM's model + lm_head (dropped when tied to the embeddings)."""
    h, i, vocab = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    heads = t["num_attention_heads"]
    kv_heads = t.get("num_key_value_heads") or heads
    head_dim = t.get("head_dim") or h // heads
    attention = [h * heads * head_dim, h * kv_heads * head_dim, h * kv_heads * head_dim, heads * head_dim * h]
    layer = attention + [h * i, h * i, i * h, h, h]  # gate, up, down, two RMSNorms
    head = [] if t.get("tie_word_embeddings", False) else [vocab * h]
    return [vocab * h] + layer * t["num_hidden_layers"] + [h] + head
