"""Activation checkpointing of a LLaVA model: every decoder layer, or only the first N (selective).

Shared by the train loop (`spec.training.checkpointLayers`) and `vlmtune bench step
--checkpoint-layers`. Each checkpointed layer costs a second forward in the backward pass; memory
left free once a job fits is better spent keeping the other layers' activations (docs/benchmarks.md:
8 of 32 layers on the 7B shape ran at 42.5% MFU against 36.8% for all 32).
"""

from __future__ import annotations

from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The language model's decoder layers of a transformers `LlavaForConditionalGeneration`."""
    return model.model.language_model.layers


def enable_checkpointing(model: nn.Module, layers: int | None = None) -> int:
    """Recompute activations in the backward pass: all decoder layers (None) or the first `layers`.

    The vision tower's layers are checkpointed whenever checkpointing is on; they only recompute
    when it trains. Non-reentrant checkpointing: frozen inputs need no `requires_grad` trick.

    Returns:
        How many decoder layers recompute.

    Raises:
        ValueError: `layers` is not between 1 and the model's decoder layers.
    """
    stack = decoder_layers(model)
    if layers is not None and not 1 <= layers <= len(stack):
        raise ValueError(
            f"spec.training.checkpointLayers: {layers} is not between 1 and the model's "
            f"{len(stack)} decoder layers; lower it, or leave it out to checkpoint all of them"
        )
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if layers is None:
        return len(stack)
    for index, layer in enumerate(stack):
        layer.gradient_checkpointing = index < layers
    return layers
