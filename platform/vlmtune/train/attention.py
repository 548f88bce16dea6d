"""Which attention kernel the language model runs, and switching it on a built model.

Padded rows keep SDPA (its flash kernel handles a causal mask with right padding). Packed rows need a kernel that
follows sample boundaries without computing across them: flash-attn's varlen kernel where the package is installed
on a GPU, else flex_attention on GPUs (its block mask skips the blocks between samples, where SDPA would compute
the whole packed row's square and mask it), and SDPA with a block-diagonal mask on CPUs (flex_attention would
have to compile there).
"""

from __future__ import annotations

import importlib.util

from torch import nn

KERNELS = ("sdpa", "flash_attention_2", "flex_attention")


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def choose_attention(requested: str, packed: bool, device_type: str, flash_installed: bool | None = None) -> str:
    """The kernel for `requested` (auto or one of KERNELS) on `device_type`, packed rows or not.

    Raises:
        ValueError: flash_attention_2 asked for where it cannot run.
    """
    flash = flash_attn_installed() if flash_installed is None else flash_installed
    if requested == "flash_attention_2" and not (flash and device_type == "cuda"):
        raise ValueError(
            "spec.training.attention: flash_attention_2 needs a GPU and the flash-attn package "
            "installed in the image; use attention: auto"
        )
    if requested != "auto":
        return requested
    if not packed:
        return "sdpa"
    if device_type != "cuda":
        return "sdpa"
    return "flash_attention_2" if flash else "flex_attention"


def set_language_attention(model: nn.Module, kernel: str) -> None:
    """Run the language model's attention with `kernel`; the vision tower keeps SDPA (its rows are never padded)."""
    model.set_attn_implementation({"": kernel, "text_config": kernel, "vision_config": "sdpa"})
