"""LLaVA model assembly for vlmtune: presets, tokenizer, vicuna_v1 template, image processing, trainable parts.

Depends on transformers and torch only, never on `vlmtune`.
"""

from vlmtune_model.builder import BuiltModel, build_from_parts, build_tiny, load_export
from vlmtune_model.export import processor_for, save_export
from vlmtune_model.image import ImageSpec, pixel_values
from vlmtune_model.lora import LoraSettings, apply_lora
from vlmtune_model.projector import PROJECTORS, load_projector_weights
from vlmtune_model.template import (
    Tokenized,
    Turn,
    normalize_turns,
    prompt_text,
    tokenize_conversation,
)
from vlmtune_model.tokenizer import IGNORE_INDEX, IMAGE_TOKEN, tiny_tokenizer
from vlmtune_model.trainable import PARTS, set_trainable

__all__ = [
    "IGNORE_INDEX", "IMAGE_TOKEN", "PARTS", "PROJECTORS", "BuiltModel", "ImageSpec", "LoraSettings", "Tokenized",
    "Turn", "apply_lora", "build_from_parts", "build_tiny", "load_export", "load_projector_weights", "normalize_turns", "pixel_values", "processor_for",
    "prompt_text", "save_export", "set_trainable", "tiny_tokenizer", "tokenize_conversation",
]
