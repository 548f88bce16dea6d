"""Preprocessing: pixels as LLaVA-1.5 (uint8, normalized later on the accelerator), image tokens expanded,
bad images skipped in place."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
from vlmtune_model.image import CLIP_MEAN, ImageSpec, pad_to_square, pixel_values
from vlmtune_model.tokenizer import IGNORE_INDEX


def png(width: int, height: int, colour=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def record(image_bytes: bytes, image: str = "mem.png", human: str = "Colour?\n<image>") -> dict:
    conversations = [{"from": "human", "value": human}, {"from": "gpt", "value": "red"}]
    return {
        "key": "t/x",
        "task": "t",
        "image": image,
        "image_bytes": image_bytes,
        "conversations": json.dumps(conversations),
    }


@pytest.fixture(scope="module")
def preprocessor():
    return Preprocessor(ProcessorConfig("tiny", image_size=32, image_tokens=16, max_length=128))


def test_pad_to_square_centres_on_the_mean_colour():
    fill = tuple(int(round(c * 255)) for c in CLIP_MEAN)
    square = pad_to_square(Image.new("RGB", (40, 20), (255, 0, 0)), fill)
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == fill and square.getpixel((20, 20)) == (255, 0, 0)


def test_pixel_values_are_normalized_chw():
    values = pixel_values(Image.new("RGB", (10, 10), (255, 255, 255)), ImageSpec(size=16))
    assert values.shape == (3, 16, 16) and values.dtype == np.float32
    assert np.allclose(values[0], (1 - 0.48145466) / 0.26862954, atol=1e-4)


def test_row_has_expanded_image_tokens_and_masked_prompt(preprocessor):
    row = preprocessor.process(record(png(48, 32)))
    ids, labels = row["input_ids"].tolist(), row["labels"].tolist()
    assert ids.count(preprocessor.image_id) == 16
    assert row["has_image"] and not row["skip_reason"]
    assert row["pixel_values"].shape == (32, 32, 3) and row["pixel_values"].dtype == np.uint8
    supervised = [token for token, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert preprocessor.tokenizer.convert_ids_to_tokens(supervised) == ["red", "[SEP]"]


def test_corrupt_image_is_skipped_not_fatal(preprocessor):
    row = preprocessor.process(record(b"not an image"))
    assert row["skip_reason"].startswith("image unreadable")
    assert not row["has_image"] and set(row["labels"].tolist()) == {IGNORE_INDEX}


def test_a_record_without_image_bytes_trains_as_text(preprocessor):
    # Shards hold every image inline; a missing image was skipped by `data prepare`, so no bytes means text-only.
    row = preprocessor.process(record(None, human="Colour?"))
    assert not row["has_image"] and not row["skip_reason"]
    assert preprocessor.image_id not in row["input_ids"].tolist()


def test_image_cut_by_max_length_is_skipped():
    short = Preprocessor(ProcessorConfig("tiny", image_size=32, image_tokens=16, max_length=20))
    row = short.process(record(png(8, 8)))
    assert row["skip_reason"] == "maxLength cuts the image tokens" and not row["has_image"]


def test_image_token_added_when_the_text_lacks_it(preprocessor):
    row = preprocessor.process(record(png(8, 8), human="Colour?"))
    assert row["input_ids"].tolist().count(preprocessor.image_id) == 16


def test_batch_call_keeps_variable_lengths(preprocessor):
    rows = [record(png(8, 8)), record(png(8, 8), human="A much longer question about the colour?\n<image>")]
    batch = {name: np.asarray([r[name] for r in rows], dtype=object) for name in rows[0]}
    out = preprocessor(batch)
    assert len(out["input_ids"]) == 2 and len(out["input_ids"][0]) < len(out["input_ids"][1])
    assert out["pixel_values"].shape == (2, 32, 32, 3) and out["pixel_values"].dtype == np.uint8


def test_shipped_pixels_normalize_to_the_cpu_pixel_values(preprocessor):
    import torch

    from vlmtune_model.image import normalize_pixels

    data = png(48, 30, colour=(10, 200, 90))
    row = preprocessor.process(record(data))
    on_device = normalize_pixels(torch.from_numpy(row["pixel_values"][None].copy()), ImageSpec(size=32), torch.float32)
    expected = pixel_values(Image.open(io.BytesIO(data)), ImageSpec(size=32))
    assert torch.equal(on_device[0], torch.from_numpy(expected))
