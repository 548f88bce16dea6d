"""Projector kinds on transformers' two-layer `LlavaMultiModalProjector`, and LLaVA-1.5 projector files.

transformers' LLaVA has one projector shape: linear_1 -> activation -> linear_2. LLaVA's `linear`
projector is expressed in it exactly: the identity activation (`projector_hidden_act: linear`) and
linear_2 fixed to the identity matrix (frozen, zero bias). The export is then a standard LLaVA
checkpoint that `from_pretrained` loads and runs unchanged, at the cost of one unused
hidden x hidden matrix; the kind is read back from the activation.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

PROJECTORS = ("mlp2x_gelu", "linear")
ACTIVATIONS = {"mlp2x_gelu": "gelu", "linear": "linear"}

# LLaVA saves its projector under `model.mm_projector.` (an nn.Sequential for mlp2x_gelu: Linear, GELU,
# Linear at indices 0, 1, 2; a bare nn.Linear for linear). Its loader strips everything up to
# `mm_projector.`, so files without the `model.` prefix are accepted as well.
LLAVA_KEYS = {
    "mlp2x_gelu": {
        "0.weight": "linear_1.weight",
        "0.bias": "linear_1.bias",
        "2.weight": "linear_2.weight",
        "2.bias": "linear_2.bias",
    },
    "linear": {"weight": "linear_1.weight", "bias": "linear_1.bias"},
}
_LLAVA_PREFIX = re.compile(r"^(?:.*\.)?mm_projector\.")


def check_projector(kind: str) -> None:
    if kind not in PROJECTORS:
        raise ValueError(f"projector {kind!r} is not supported; choose from {PROJECTORS}")


def projector_kind(config) -> str:
    """The kind of a `LlavaConfig`'s projector (exports carry it in `projector_hidden_act`)."""
    return "linear" if config.projector_hidden_act == "linear" else "mlp2x_gelu"


def shape_projector(model: nn.Module, kind: str) -> None:
    """Make a freshly built model's projector the `linear` kind (no-op for mlp2x_gelu)."""
    if kind != "linear":
        return
    second = model.model.multi_modal_projector.linear_2
    with torch.no_grad():
        second.weight.copy_(torch.eye(second.out_features, dtype=second.weight.dtype))
        if second.bias is not None:
            second.bias.zero_()
    second.requires_grad_(False)


def fixed_projector_modules(model: nn.Module) -> list[nn.Module]:
    """Projector modules that never train: linear_2 of a `linear` projector stays the identity."""
    return [model.model.multi_modal_projector.linear_2] if projector_kind(model.config) == "linear" else []


def read_projector_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A projector state dict from `.safetensors` or a torch pickle (`mm_projector.bin`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    # weights_only: a projector file is plain tensors; never unpickle arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def llava_projector_state(weights: dict[str, torch.Tensor], kind: str, source: str = "projector file") -> dict:
    """Map LLaVA's `mm_projector` keys onto transformers' projector (`linear_1`/`linear_2`).

    Raises:
        ValueError: the file holds no projector, or another kind of projector. Keys outside
            `mm_projector.` are ignored, as LLaVA's own loader does.
    """
    found = {_LLAVA_PREFIX.sub("", key): key for key in weights if _LLAVA_PREFIX.match(key)}
    expected = LLAVA_KEYS[kind]
    if set(found) != set(expected):
        other = next((name for name, keys in LLAVA_KEYS.items() if set(found) == set(keys)), None)
        hint = f" (that is a {other} projector: set projector: {other})" if other else ""
        raise ValueError(
            f"{source}: expected LLaVA {kind} projector keys "
            f"{sorted('model.mm_projector.' + k for k in expected)}, found {sorted(found.values()) or 'none'}{hint}"
        )
    return {expected[short]: weights[key] for short, key in found.items()}


def load_projector_weights(model: nn.Module, path: str | Path, source: str | None = None) -> None:
    """Initialise `model`'s projector from a LLaVA-1.5 projector file (e.g. the stage-1 `mm_projector.bin`).

    Raises:
        ValueError: wrong keys, or a tensor whose shape does not fit (both shapes named).
    """
    source = source or str(path)
    kind = projector_kind(model.config)
    state = llava_projector_state(read_projector_file(path), kind, source)
    projector = model.model.multi_modal_projector
    own = projector.state_dict()
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            llava_key = next(k for k, v in LLAVA_KEYS[kind].items() if v == name)
            raise ValueError(
                f"{source}: model.mm_projector.{llava_key} has shape {tuple(tensor.shape)}, but the model's "
                f"projector {name} needs {tuple(own[name].shape)} (vision hidden -> text hidden); "
                "the file was trained for another vision tower or language model"
            )
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor.to(own[name].dtype))
