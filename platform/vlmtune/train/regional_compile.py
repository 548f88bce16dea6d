"""Regional compilation: torch.compile each decoder layer in place, not the whole model.

`nn.Module.compile` keeps each layer where it is (parameter names, state dicts, DeepSpeed's hooks and
checkpoints unchanged) and compiles its call. The layers share one code object, so with PyTorch's default
`inline_inbuilt_nn_modules` one compiled graph serves them all: the compile time is one layer's, not the
model's. Activation checkpointing wraps the compiled call (transformers' checkpointing layer sits outside it).
"""

from __future__ import annotations

from torch import nn

from vlmtune.train.recompute import decoder_layers


def compile_layers(model: nn.Module, dynamic: bool | None = None) -> int:
    """Compile every decoder layer of `model`'s language model in place.

    Args:
        dynamic: torch.compile's `dynamic` (None: static first, dynamic once a second length is seen).

    Returns:
        How many layers were compiled.
    """
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=dynamic)
    return len(layers)


def is_compiled(layer: nn.Module) -> bool:
    return getattr(layer, "_compiled_call_impl", None) is not None
