"""The throughput and memory levers of a training run, as one value the loop and the benchmarks share.

`Levers()` is today's path: full logits, padded rows, eager layers, SDPA, activations on the device. The train
loop builds them from `spec.training` (`levers_of`), `vlmtune bench step|e2e` from flags; `prepare_model` applies
the model-side ones once after the model is built, `train_step` the per-micro-batch ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vlmtune.train.attention import choose_attention, set_language_attention
from vlmtune.train.regional_compile import compile_layers


@dataclass(frozen=True)
class Levers:
    chunked_loss: bool = False
    """Head + cross-entropy in chunks of supervised positions (`chunked_loss`)."""
    pack: bool = False
    """One padding-free row per micro-batch (`packing`)."""
    offload_activations: bool = False
    """Saved activations outside recomputed layers wait in host memory (`offload`)."""
    compile_layers: bool = False
    """torch.compile each decoder layer (`regional_compile`)."""
    attention: str = "auto"
    """auto, sdpa, flash_attention_2 or flex_attention (`attention`)."""

    def describe(self) -> dict:
        return {
            "chunked_loss": self.chunked_loss,
            "pack_samples": self.pack,
            "offload_activations": self.offload_activations,
            "compile_layers": self.compile_layers,
            "attention": self.attention,
        }


def levers_of(training) -> Levers:
    """The levers `spec.training` (a TrainingSpec) asks for."""
    return Levers(
        chunked_loss=training.chunked_loss,
        pack=training.pack_samples,
        offload_activations=training.offload_activations,
        compile_layers=training.compile_layers,
        attention=training.attention.value,
    )


def prepare_model(model: nn.Module, levers: Levers, device_type: str) -> str:
    """Apply the model-side levers to a built model (after checkpointing is set, before DeepSpeed wraps it).

    Returns:
        The attention kernel the language model runs.

    Raises:
        ValueError: an attention kernel that cannot run here.
    """
    kernel = choose_attention(levers.attention, levers.pack, device_type)
    set_language_attention(model, kernel)
    if levers.compile_layers:
        compile_layers(model)
    return kernel
