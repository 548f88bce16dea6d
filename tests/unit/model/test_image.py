"""The image hot path: same pixels as LLaVA's pad-then-resize, computed with less work."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlmtune_model.image import (
    CLIP_MEAN,
    CLIP_STD,
    ImageSpec,
    normalize,
    pad_fill,
    pad_to_square,
    padded_resize,
    pixel_values,
    square_pixels,
)

FILL = pad_fill(CLIP_MEAN)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth content with edges, like a photo (white noise would make bicubic overshoot everywhere)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


@pytest.mark.parametrize(
    "width,height,size",
    [(640, 480, 336), (200, 900, 336), (37, 5, 64), (1, 3, 16), (336, 335, 336), (500, 500, 336), (30, 20, 336)],
)
def test_padded_resize_matches_pad_then_resize(width, height, size):
    image = photo(width, height)
    expected = np.asarray(pad_to_square(image, FILL).resize((size, size), Image.Resampling.BICUBIC)).astype(int)
    actual = np.asarray(padded_resize(image, size, FILL)).astype(int)
    difference = np.abs(actual - expected)
    assert difference.max() <= 8 and difference.mean() < 0.05


def test_normalize_is_bit_identical_to_the_arithmetic():
    array = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    mean, std = np.asarray(CLIP_MEAN, np.float32), np.asarray(CLIP_STD, np.float32)
    expected = (np.asarray(array, np.float32) / 255.0 - mean) / std
    assert np.array_equal(normalize(Image.fromarray(array), ImageSpec(size=50)), expected.transpose(2, 0, 1))


def test_large_jpeg_is_decoded_at_reduced_scale_with_the_same_result():
    buffer = io.BytesIO()
    photo(1600, 1200).save(buffer, format="JPEG", quality=95)
    opened = Image.open(io.BytesIO(buffer.getvalue()))
    fast = pixel_values(opened, ImageSpec(size=336))
    assert opened.size == (400, 300)  # decoded at 1/4 scale, still covering 336 px once padded
    full = Image.open(io.BytesIO(buffer.getvalue()))
    full.load()  # loaded first: no reduced-scale decode
    slow = pixel_values(full, ImageSpec(size=336))
    assert fast.shape == slow.shape == (3, 336, 336)
    assert np.abs(fast - slow).mean() < 0.02  # in normalized units: ~1 grey level of 255


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=95) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("width,height", [(640, 480), (200, 900), (37, 5), (500, 500)])
def test_square_pixels_of_a_png_are_padded_resize_exactly(width, height):
    image = photo(width, height)
    expected = np.asarray(padded_resize(image, 336, FILL))
    assert np.array_equal(square_pixels(encoded(image, "PNG"), ImageSpec(size=336)), expected)


@pytest.mark.parametrize("width,height", [(1600, 1200), (700, 699), (200, 900), (300, 200), (3000, 100)])
def test_jpeg_pixels_are_those_of_the_pil_path(width, height):
    data = encoded(photo(width, height), "JPEG")
    spec = ImageSpec(size=336)
    shipped = normalize(Image.fromarray(square_pixels(data, spec)), spec)
    assert np.array_equal(shipped, pixel_values(Image.open(io.BytesIO(data)), spec))


def test_square_pixels_writes_into_a_batch_slot():
    batch = np.zeros((2, 64, 64, 3), np.uint8)
    data = encoded(photo(90, 60), "JPEG")
    result = square_pixels(data, ImageSpec(size=64), out=batch[1])
    assert result.base is batch and batch[1].any() and not batch[0].any()
