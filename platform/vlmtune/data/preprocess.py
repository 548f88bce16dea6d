"""Ray Data preprocessing: record -> token ids, labels and pixels (LLaVA-1.5 rules).

Pixels leave as uint8 HWC, padded to square and resized (`vlmtune_model.image.square_pixels`): a
quarter of float32's bytes through the object store, and no normalization on the CPU; the train
step normalizes on the accelerator. A record that cannot be used (corrupt image) still yields a
row, flagged invalid, with every label masked and no image: the batch shape every rank expects
stays intact, the sample adds no loss, and the train loop counts it as skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from vlmtune.node_cache import local_copy
from vlmtune_model.image import ImageSpec, square_pixels
from vlmtune_model.template import Turn, normalize_turns, tokenize_conversation
from vlmtune_model.tokenizer import IGNORE_INDEX, IMAGE_TOKEN, image_token_id


@dataclass(frozen=True)
class ProcessorConfig:
    """What preprocessing needs to know about the model; picklable, cheap to ship to Ray tasks."""

    tokenizer: str  # "tiny", a local folder, hub id or s3:// folder holding a tokenizer
    image_size: int
    image_tokens: int
    max_length: int

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        from vlmtune_model.tokenizer import tiny_tokenizer, with_image_token

        if self.tokenizer == "tiny":
            return tiny_tokenizer()
        # s3:// is fetched once per node (config and tokenizer files only), wherever this actor runs.
        return with_image_token(AutoTokenizer.from_pretrained(local_copy(self.tokenizer, weights=False)))


class Preprocessor:
    """Callable class for `Dataset.map_batches`: one tokenizer per Ray actor."""

    def __init__(self, config: ProcessorConfig):
        self.config = config
        self.tokenizer = config.load_tokenizer()
        self.image_spec = ImageSpec(size=config.image_size)
        self.image_id = image_token_id(self.tokenizer)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = len(batch["key"])
        side = self.config.image_size
        # Each row's pixels go straight into the batch array and are dropped, so the allocator
        # hands the next row the same (warm) buffer instead of holding a batch of them to stack.
        pixels = np.empty((size, side, side, 3), np.uint8)
        columns: dict[str, list] = {}
        for index in range(size):
            row = self.process(_row(batch, index))
            pixels[index] = row["pixel_values"]
            for name, value in row.items():
                if name != "pixel_values":
                    columns.setdefault(name, []).append(value)
        return {name: pixels if name == "pixel_values" else _column(columns[name]) for name in row}

    def process(self, record: dict) -> dict:
        pixels, error = None, ""
        data = record.get("image_bytes")
        if data is not None and len(data):
            try:
                pixels = square_pixels(bytes(data), self.image_spec)
            except Exception as err:  # any decode failure skips the sample, never the run
                error = f"image unreadable: {type(err).__name__}"
        turns = with_image(normalize_turns(json.loads(record["conversations"])), pixels is not None)
        tokens = tokenize_conversation(
            turns, self.tokenizer, image_tokens=self.config.image_tokens, max_length=self.config.max_length
        )
        if pixels is not None and tokens.input_ids.count(self.image_id) < self.config.image_tokens:
            error, pixels = "maxLength cuts the image tokens", None
        if error:
            ids, labels = [self.tokenizer.bos_token_id], [IGNORE_INDEX]
        else:
            ids, labels = tokens.input_ids, tokens.labels
        size = self.config.image_size
        return {
            "key": record["key"],
            "task": record["task"],
            "input_ids": np.asarray(ids, dtype=np.int32),
            "labels": np.asarray(labels, dtype=np.int32),
            "pixel_values": pixels if pixels is not None else np.zeros((size, size, 3), np.uint8),
            "has_image": pixels is not None,
            "truncated": tokens.truncated and not error,
            "skip_reason": error,
        }


def with_image(turns: list[Turn], has_image: bool) -> list[Turn]:
    """Make the image token agree with whether an image is actually fed."""
    present = IMAGE_TOKEN in turns[0].text
    if has_image and not present:
        return [Turn("human", f"{IMAGE_TOKEN}\n{turns[0].text}"), *turns[1:]]
    if not has_image and present:
        return [Turn("human", turns[0].text.replace(IMAGE_TOKEN, "").strip()), *turns[1:]]
    return turns


def _row(batch: dict[str, np.ndarray], index: int) -> dict:
    return {name: values[index] for name, values in batch.items()}


def _column(values: list) -> np.ndarray:
    if isinstance(values[0], np.ndarray):
        shapes = {value.shape for value in values}
        if len(shapes) == 1:
            return np.stack(values)
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column
    return np.asarray(values)
