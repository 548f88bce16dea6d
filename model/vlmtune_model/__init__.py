"""LLaVA model assembly for vlmtune: shapes, presets, tokenizer, vicuna_v1 template, image processing, trainable parts.

Depends on transformers and torch only, never on `vlmtune`. Names are imported on first use, so
`vlmtune_model.shapes` (plain data) can be read by planners and CLIs without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BuiltModel": "builder",
    "build_from_parts": "builder",
    "build_tiny": "builder",
    "load_export": "builder",
    "llava_config": "builder",
    "shape_config": "builder",
    "processor_for": "export",
    "save_export": "export",
    "ImageSpec": "image",
    "pixel_values": "image",
    "LoraSettings": "lora",
    "apply_lora": "lora",
    "PROJECTORS": "projector",
    "load_projector_weights": "projector",
    "SHAPES": "shapes",
    "Shape": "shapes",
    "Tokenized": "template",
    "Turn": "template",
    "normalize_turns": "template",
    "prompt_text": "template",
    "tokenize_conversation": "template",
    "IGNORE_INDEX": "tokenizer",
    "IMAGE_TOKEN": "tokenizer",
    "tiny_tokenizer": "tokenizer",
    "PARTS": "trainable",
    "set_trainable": "trainable",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlmtune_model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vlmtune_model.{_EXPORTS[name]}"), name)
