"""Which parts of a LLaVA model train: stages are data (`trainable: [...]`), not flags."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

PARTS = ("vision_tower", "projector", "language_model")


def part_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Map each part name to its modules in a transformers `LlavaForConditionalGeneration`."""
    inner = model.model
    # lm_head belongs to the language model (it is tied to its embeddings in small presets).
    return {
        "vision_tower": [inner.vision_tower],
        "projector": [inner.multi_modal_projector],
        "language_model": [inner.language_model, model.lm_head],
    }


def set_trainable(model: nn.Module, trainable: Iterable[str]) -> dict[str, int]:
    """Freeze everything except `trainable` parts; return trainable parameter counts per part."""
    wanted = set(trainable)
    unknown = wanted - set(PARTS)
    if unknown:
        raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {PARTS}")
    counts = {}
    for part, modules in part_modules(model).items():
        for module in modules:
            module.requires_grad_(part in wanted)
        counts[part] = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
    return counts
