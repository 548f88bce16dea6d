"""LoRA on the language model (peft): adapters in place, merged into plain weights at export.

The adapters are injected into the `LlavaForConditionalGeneration` itself, so the train loop,
DeepSpeed and checkpoints see the same module with a few more parameters. The export merges
them from a state dict (W + B @ A * alpha / r), which works the same for a ZeRO-3 consolidated
state dict as for a live module, and leaves a checkpoint that plain `from_pretrained` loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from vlmtune_model.builder import BuiltModel

LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER = "default"  # peft's adapter name, part of every adapter parameter's name
ADAPTER_DIR = "adapter"
_LANGUAGE_MODEL = "model.language_model."


@dataclass(frozen=True)
class LoraSettings:
    """LLaVA-1.5's LoRA recipe by default: r=128, alpha=256, dropout 0.05, every linear layer of the LM."""

    rank: int = 128
    alpha: float = 256.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] = LLAMA_LINEAR_MODULES

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class LoraAdapters:
    """The peft wrapper (for saving the adapter) and the settings it was made with."""

    peft_model: nn.Module
    settings: LoraSettings


def target_pattern(model: nn.Module, names: tuple[str, ...]) -> str:
    """A peft `target_modules` regex matching `names` inside the language model only.

    The CLIP vision tower has q_proj/k_proj/v_proj too; a bare name list would adapt it as well.

    Raises:
        ValueError: a name matches no linear layer of the language model (the layers it has are listed).
    """
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if name.startswith(_LANGUAGE_MODEL) and isinstance(module, nn.Linear)
    }
    missing = [name for name in names if name not in linear]
    if missing:
        raise ValueError(
            f"lora.targetModules {missing} match no linear layer of the language model; it has {sorted(linear)}"
        )
    return rf"^{re.escape(_LANGUAGE_MODEL)}.*\.({'|'.join(names)})$"


def apply_lora(built: BuiltModel, settings: LoraSettings) -> BuiltModel:
    """Inject LoRA adapters into the language model of `built.model` (in place) and return it with them.

    peft freezes every other parameter; `set_trainable` afterwards decides what else trains.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_pattern(built.model, settings.target_modules),
        bias="none",
    )
    peft_model = get_peft_model(built.model, config, adapter_name=ADAPTER)
    return replace(built, lora=LoraAdapters(peft_model, settings))


def is_adapter_key(key: str) -> bool:
    return ".lora_" in key


def merged_state_dict(state_dict: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """`state_dict` of a LoRA-injected model -> the plain model's, each adapter folded into its weight."""
    merged = {}
    for key, value in state_dict.items():
        if is_adapter_key(key):
            continue
        if ".base_layer." in key:
            module, param = key.split(".base_layer.")
            if param == "weight":
                down = state_dict[f"{module}.lora_A.{ADAPTER}.weight"].to(torch.float32)
                up = state_dict[f"{module}.lora_B.{ADAPTER}.weight"].to(torch.float32)
                value = (value.to(torch.float32) + up @ down * scaling).to(value.dtype)
            key = f"{module}.{param}"
        merged[key] = value
    return merged


def save_adapter(adapters: LoraAdapters, state_dict: dict[str, torch.Tensor], directory: str | Path) -> Path:
    """The adapters alone in peft's format (`PeftModel.from_pretrained(base, directory)` loads them).

    They apply to the model the job started from; the merged export is the complete trained model.
    """
    # peft names parameters from its wrapper (`base_model.model.` + the module's own names).
    wrapped = {f"base_model.model.{key}": value for key, value in state_dict.items() if is_adapter_key(key)}
    adapters.peft_model.save_pretrained(str(directory), state_dict=wrapped, save_embedding_layers=False)
    return Path(directory)
