"""Assemble transformers' `LlavaForConditionalGeneration` from a preset, an export, or pretrained parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from vlmtune_model.image import ImageSpec
from vlmtune_model.projector import (
    ACTIVATIONS,
    check_projector,
    projector_kind,
    shape_projector,
)
from vlmtune_model.shapes import TINY, Shape
from vlmtune_model.tokenizer import image_token_id, llava_tokenizer, tiny_tokenizer


@dataclass
class BuiltModel:
    model: LlavaForConditionalGeneration
    tokenizer: PreTrainedTokenizerBase
    lora: Any = None  # LoraAdapters once `apply_lora` injected adapters into `model`

    @property
    def projector(self) -> str:
        return projector_kind(self.model.config)

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=self.model.config.vision_config.image_size)

    @property
    def image_tokens(self) -> int:
        """Placeholder tokens per image: one per patch, plus CLS when the `full` feature set is used."""
        vision = self.model.config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2
        return patches + (self.model.config.vision_feature_select_strategy == "full")


def llava_config(
    vision: CLIPVisionConfig, text: PretrainedConfig, *, image_token_id: int, projector: str = "mlp2x_gelu"
) -> LlavaConfig:
    """LLaVA-1.5's composition of a vision tower and a language model: the one place a LlavaConfig is made.

    The image feature is CLIP's second-to-last layer without CLS; `projector` picks the projector's activation.
    """
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(vision.image_size // vision.patch_size) ** 2,
        projector_hidden_act=ACTIVATIONS[projector],
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )


def shape_config(shape: Shape, *, image_token_id: int, projector: str = "mlp2x_gelu", **text) -> LlavaConfig:
    """The LlavaConfig of `shape` (random-init models: the tiny preset, benchmark shapes); `text` adds Llama keys."""
    return llava_config(
        CLIPVisionConfig(**shape.vision),
        LlamaConfig(**{**shape.text, **text}),
        image_token_id=image_token_id,
        projector=projector,
    )


def tiny_config(
    tokenizer: PreTrainedTokenizerBase, image_size: int = TINY.image_size, projector: str = "mlp2x_gelu"
) -> LlavaConfig:
    """The `tiny` preset's config (`shapes.TINY`) over the offline tokenizer."""
    if len(tokenizer) != TINY.text["vocab_size"]:
        raise ValueError(f"the tiny tokenizer has {len(tokenizer)} tokens, shapes.TINY says {TINY.text['vocab_size']}")
    return shape_config(
        TINY.with_image_size(image_size),
        image_token_id=image_token_id(tokenizer),
        projector=projector,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny(seed: int = 0, image_size: int = TINY.image_size, projector: str = "mlp2x_gelu") -> BuiltModel:
    """The `tiny` preset: random init from configs, offline tokenizer; deterministic for a seed."""
    check_projector(projector)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_config(tokenizer, image_size, projector))
    shape_projector(model, projector)
    return BuiltModel(model, tokenizer)


def load_export(path: str) -> BuiltModel:
    """A model exported by a previous job (Hugging Face format, tokenizer beside it).

    A `linear` projector comes back as one: its identity linear_2 is frozen again.
    """
    tokenizer = llava_tokenizer(AutoTokenizer.from_pretrained(path))
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    if projector_kind(model.config) == "linear":
        model.model.multi_modal_projector.linear_2.requires_grad_(False)
    return BuiltModel(model, tokenizer)


def build_from_parts(language_model: str, vision_tower: str, projector: str = "mlp2x_gelu") -> BuiltModel:
    """LLaVA-1.5 assembly from a causal LM and a CLIP vision tower (hub ids or local folders).

    The projector starts from random init (`load_projector_weights` can fill it from LLaVA's
    stage-1 file); the vision feature is CLIP's second-to-last layer without CLS, as in LLaVA-1.5.
    """
    check_projector(projector)
    tokenizer = llava_tokenizer(AutoTokenizer.from_pretrained(language_model, use_fast=True))
    vision = CLIPVisionModel.from_pretrained(vision_tower, dtype=torch.float32)
    language = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch.float32)
    config = llava_config(vision.config, language.config, image_token_id=image_token_id(tokenizer), projector=projector)
    model = LlavaForConditionalGeneration(config)
    shape_projector(model, projector)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    model.resize_token_embeddings(len(tokenizer))
    return BuiltModel(model, tokenizer)
