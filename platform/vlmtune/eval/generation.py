"""Greedy, batched answers from a LLaVA model, with prompts built exactly as in training. Runs without Ray.

The prompt is the training template's (vicuna_v1, image first): `[bos] + tokens(prompt_text(turns))` with each
`<image>` token expanded to one placeholder per image patch, so an evaluated model sees what it was trained on.
Batches are padded on the left, so every row's answer starts at the same position.

The same path serves a judge model inside the Ray job: its questions carry no image (no image tokens, no pixels)
and may name their own system prompt and a sampling temperature.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from vlmtune.eval.items import Question
from vlmtune_model import IMAGE_TOKEN, BuiltModel, Turn, pixel_values, prompt_text

__all__ = ["Question", "generate", "image_batch", "left_pad", "load_model", "prompt_ids"]


def prompt_ids(built: BuiltModel, prompt: str, with_image: bool = True, system: str | None = None) -> list[int]:
    """Token ids of the generation prompt for one question (single turn, open assistant turn)."""
    tokenizer = built.tokenizer
    turn = Turn("human", f"{IMAGE_TOKEN}\n{prompt}" if with_image else prompt)
    text = prompt_text([turn]) if system is None else prompt_text([turn], system=system)
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
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids, mask


def image_batch(built: BuiltModel, images: Sequence[bytes]) -> torch.Tensor:
    arrays = [pixel_values(Image.open(io.BytesIO(data)), built.image_spec) for data in images]
    return torch.from_numpy(np.stack(arrays))


@torch.inference_mode()
def generate(built: BuiltModel, questions: Sequence[Question], max_new_tokens: int, seed: int = 0) -> list[str]:
    """Answers to `questions`, in order, decoded without special tokens and stripped.

    Args:
        questions: questions that share `Question.settings` (image or not, system prompt, length, temperature).
        max_new_tokens: the length for questions that name none.
        seed: seeds sampling (temperature above 0); greedy decoding ignores it.

    Raises:
        ValueError: questions with different settings in one call.
    """
    if len({q.settings for q in questions}) > 1:
        raise ValueError(
            "generate() takes questions of one kind at a time (image or text, system, length, "
            "temperature); group them first"
        )
    first = questions[0]
    model = built.model
    device, dtype = model.device, model.dtype
    input_ids, mask = left_pad(
        [prompt_ids(built, q.prompt, q.image is not None, q.system) for q in questions], built.tokenizer.pad_token_id
    )
    extra = {}
    if first.image is not None:
        extra["pixel_values"] = image_batch(built, [q.image for q in questions]).to(device=device, dtype=dtype)
    if first.temperature > 0:
        torch.manual_seed(seed)
        extra.update(do_sample=True, temperature=first.temperature, top_p=None, top_k=None)
    else:
        extra["do_sample"] = False
    output = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        max_new_tokens=first.max_new_tokens or max_new_tokens,
        num_beams=1,
        pad_token_id=built.tokenizer.pad_token_id,
        eos_token_id=built.tokenizer.eos_token_id,
        **extra,
    )
    answers = output[:, input_ids.shape[1] :]
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
