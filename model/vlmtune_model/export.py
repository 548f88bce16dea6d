"""Hugging Face export: weights, config, tokenizer and a LlavaProcessor that `from_pretrained` loads."""

from __future__ import annotations

from pathlib import Path

# The PIL image processor: torchvision is not a dependency (see README).
from transformers import CLIPImageProcessorPil, LlavaProcessor

from vlmtune_model.builder import BuiltModel
from vlmtune_model.image import CLIP_MEAN, CLIP_STD
from vlmtune_model.lora import ADAPTER_DIR, merged_state_dict, save_adapter
from vlmtune_model.tokenizer import IMAGE_TOKEN


def processor_for(built: BuiltModel) -> LlavaProcessor:
    """A processor matching vlmtune's preprocessing (pad-to-square happens before it)."""
    size = built.model.config.vision_config.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=built.tokenizer,
        patch_size=built.model.config.vision_config.patch_size,
        vision_feature_select_strategy=built.model.config.vision_feature_select_strategy,
        image_token=IMAGE_TOKEN, num_additional_image_tokens=1,
    )


def save_export(built: BuiltModel, state_dict: dict, directory: str | Path) -> Path:
    """Write `state_dict` (full, consolidated) with config, tokenizer and processor to `directory`.

    With LoRA, the adapters are merged into the weights (plain `from_pretrained` loads the result)
    and also saved alone, in peft's format, under `directory/adapter`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if built.lora is not None:
        save_adapter(built.lora, state_dict, directory / ADAPTER_DIR)
        state_dict = merged_state_dict(state_dict, built.lora.settings.scaling)
    built.model.save_pretrained(directory, state_dict=state_dict, safe_serialization=True)
    built.tokenizer.save_pretrained(directory)
    processor_for(built).save_pretrained(directory)
    return directory
