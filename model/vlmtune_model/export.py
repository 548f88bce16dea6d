"""Hugging Face export: weights, config, tokenizer and a LlavaProcessor that `from_pretrained` loads.

The processor answers the standard way: `AutoProcessor.from_pretrained(export)` pads images to a square
with the CLIP mean, resizes them bicubically to the tower's size without a crop (as training does), and
`processor.apply_chat_template(messages, add_generation_prompt=True)` writes the vicuna_v1 prompt training
used, so `model.generate` sees what the model was trained on.
"""

from __future__ import annotations

from pathlib import Path

# The PIL backend: torchvision is not a dependency (see README), and its bicubic differs from PIL's.
from transformers import LlavaImageProcessorPil, LlavaProcessor
from transformers.image_utils import PILImageResampling

from vlmtune_model.builder import BuiltModel
from vlmtune_model.image import CLIP_MEAN, CLIP_STD
from vlmtune_model.lora import ADAPTER_DIR, merged_state_dict, save_adapter
from vlmtune_model.tokenizer import IMAGE_TOKEN, chat_template


def image_processor_for(built: BuiltModel) -> LlavaImageProcessorPil:
    """transformers' LLaVA image processor set up as `vlmtune_model.image.pixel_values`: pad, resize, normalize."""
    size = built.image_spec.size
    return LlavaImageProcessorPil(
        do_pad=True,
        do_resize=True,
        size={"height": size, "width": size},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=False,
        do_rescale=True,
        do_normalize=True,
        do_convert_rgb=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def processor_for(built: BuiltModel) -> LlavaProcessor:
    """A processor that reproduces vlmtune's preprocessing and prompt (the model's tokenizer, the chat template)."""
    return LlavaProcessor(
        image_processor=image_processor_for(built),
        tokenizer=built.tokenizer,
        patch_size=built.model.config.vision_config.patch_size,
        vision_feature_select_strategy=built.model.config.vision_feature_select_strategy,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
        chat_template=chat_template(),
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
    built.tokenizer.chat_template = chat_template()
    built.tokenizer.save_pretrained(directory)
    processor_for(built).save_pretrained(directory)
    return directory
