"""Greedy, batched answers from a LLaVA model, with prompts built exactly as in training. Runs without Ray.

The prompt is the training template's (vicuna_v1, image first): `[bos] + tokens(prompt_text(turns))` with each
`<image>` token expanded to one placeholder per image patch, so an evaluated model sees what it was trained on.
Batches are padded on the left, so every row's answer starts at the same position.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vlmtune_model import IMAGE_TOKEN, BuiltModel, Turn, pixel_values, prompt_text


@dataclass(frozen=True)
class Question:
    prompt: str
    """User turn without the image token; the image is put in front, as LLaVA-1.5 does."""
    image: bytes
    """Encoded image."""


def prompt_ids(built: BuiltModel, prompt: str) -> list[int]:
    """Token ids of the generation prompt for one question (single turn, open assistant turn)."""
    tokenizer = built.tokenizer
    text = prompt_text([Turn("human", f"{IMAGE_TOKEN}\n{prompt}")])
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    ids = [tokenizer.bos_token_id]
    for token in tokenizer(text, add_special_tokens=False).input_ids:
        ids.extend([image_id] * built.image_tokens if token == image_id else [token])
    return ids


def left_pad(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded on the left to the longest sequence."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    return input_ids, mask


def image_batch(built: BuiltModel, images: Sequence[bytes]) -> torch.Tensor:
    arrays = [pixel_values(Image.open(io.BytesIO(data)), built.image_spec) for data in images]
    return torch.from_numpy(np.stack(arrays))


@torch.inference_mode()
def generate(built: BuiltModel, questions: Sequence[Question], max_new_tokens: int) -> list[str]:
    """Greedy answers to `questions`, in order, decoded without special tokens and stripped."""
    model = built.model
    device, dtype = model.device, model.dtype
    input_ids, mask = left_pad([prompt_ids(built, q.prompt) for q in questions], built.tokenizer.pad_token_id)
    pixels = image_batch(built, [q.image for q in questions]).to(device=device, dtype=dtype)
    output = model.generate(
        input_ids=input_ids.to(device), attention_mask=mask.to(device), pixel_values=pixels,
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
        pad_token_id=built.tokenizer.pad_token_id, eos_token_id=built.tokenizer.eos_token_id,
    )
    answers = output[:, input_ids.shape[1]:]
    return [text.strip() for text in built.tokenizer.batch_decode(answers, skip_special_tokens=True)]


def load_model(model_dir: str | None, device: str = "cpu") -> BuiltModel:
    """The model to evaluate: an export folder (or hub id), or the tiny preset when `model_dir` is None.

    On a GPU the weights are cast to bfloat16 (fp32 on CPU), as reference evaluations run in half precision.
    """
    from vlmtune_model import build_tiny, load_export

    built = build_tiny(seed=0) if model_dir is None else load_export(model_dir)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    built.model.to(device=device, dtype=dtype).eval()
    return built
