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
from vlmtune_model.template import Turn, normalize_turns, tokenize_conversations
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
        # Pixels are written straight into the batch array: no per-row array to copy and stack.
        pixels = np.empty((size, side, side, 3), np.uint8)
        rows = self.process_many([_row(batch, index) for index in range(size)], pixels)
        return {name: pixels if name == "pixel_values" else _column([row[name] for row in rows]) for name in rows[0]}

    def process(self, record: dict) -> dict:
        """One record's row (tests and tools; Ray Data calls the batch path)."""
        return self.process_many([record])[0]

    def process_many(self, records: list[dict], pixels: np.ndarray | None = None) -> list[dict]:
        """Rows of `records`, tokenized with one tokenizer call; with `pixels` (N, S, S, 3) images land there."""
        size = self.config.image_size
        slots = pixels if pixels is not None else np.empty((len(records), size, size, 3), np.uint8)
        images = [self._image(record, slot) for record, slot in zip(records, slots)]
        turns = [
            with_image(normalize_turns(json.loads(record["conversations"])), error is None and has)
            for record, (has, error) in zip(records, images)
        ]
        tokens = tokenize_conversations(
            turns, self.tokenizer, image_tokens=self.config.image_tokens, max_length=self.config.max_length
        )
        return [
            self._finish(record, has and not error, error or "", tok, slot)
            for record, (has, error), tok, slot in zip(records, images, tokens, slots)
        ]

    def _image(self, record: dict, slot: np.ndarray) -> tuple[bool, str | None]:
        """(whether the record has an image, why it cannot be used); its pixels are written into `slot`."""
        data = record.get("image_bytes")
        if data is None or not len(data):
            return False, None
        try:
            square_pixels(data, self.image_spec, slot)
        except Exception as err:  # any decode failure skips the sample, never the run
            return True, f"image unreadable: {type(err).__name__}"
        return True, None

    def _finish(self, record: dict, has_image: bool, error: str, tokens, slot: np.ndarray) -> dict:
        if has_image and tokens.input_ids.count(self.image_id) < self.config.image_tokens:
            error, has_image = "maxLength cuts the image tokens", False
        if error:
            ids, labels = [self.tokenizer.bos_token_id], [IGNORE_INDEX]
        else:
            ids, labels = tokens.input_ids, tokens.labels
        if not has_image:
            slot[:] = 0
        return {
            "key": record["key"],
            "task": record["task"],
            "input_ids": np.asarray(ids, dtype=np.int32),
            "labels": np.asarray(labels, dtype=np.int32),
            "pixel_values": slot,
            "has_image": has_image,
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
