"""Which parts of a LLaVA model train: stages are data (`trainable: [...]`), not flags."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from vlmtune_model.projector import fixed_projector_modules

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
    """Freeze everything except `trainable` parts; return trainable parameter counts per part.

    With LoRA adapters in the language model, `language_model` trains the adapters only and its
    base weights stay frozen. A `linear` projector's identity second layer never trains.
    """
    wanted = set(trainable)
    unknown = wanted - set(PARTS)
    if unknown:
        raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {PARTS}")
    adapters = adapter_parameters(model)
    parts = part_modules(model)
    for part, modules in parts.items():
        for module in modules:
            module.requires_grad_(part in wanted and not (part == "language_model" and adapters))
    for parameter in adapters:
        parameter.requires_grad_("language_model" in wanted)
    for module in fixed_projector_modules(model):
        module.requires_grad_(False)
    return {
        part: sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
        for part, modules in parts.items()
    }


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """LoRA adapter parameters (peft names them `lora_A` / `lora_B`)."""
    return [parameter for name, parameter in model.named_parameters() if ".lora_" in name]
