"""LLaVA-1.5 image preprocessing: pad to square with the CLIP mean colour, resize, normalize.

NumPy + PIL (+ libjpeg-turbo through simplejpeg), so preprocessing runs in Ray Data CPU tasks without
torchvision. This is the hot path of the data plane (one call per training sample), so it avoids work
rather than re-deriving LLaVA's steps literally; `vlmtune bench data` measures it against LLaVA's loader.
Training ships the padded, resized image as uint8 (`square_pixels`: a quarter of float32's bytes) and
normalizes on the accelerator (`normalize_pixels`); `pixel_values` does the same on the CPU for inference.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageSpec:
    size: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Centre `image` on a square canvas of its longer side (LLaVA's `expand2square`)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


@dataclass(frozen=True)
class _ResizePlan:
    """Where the image's part of the padded square lands: what `padded_resize` computes, and from what."""

    window: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the padded square that the part is resized from
    paste: tuple[int, int]  # where the image sits inside that window
    part: tuple[int, int, int, int]  # (o0, p0, o1, p1): output pixels the part covers; the rest is fill
    box: tuple[float, float, float, float]  # the resize's source box inside the window


def _plan(width: int, height: int, size: int) -> _ResizePlan:
    side = max(width, height)
    step = side / size  # input pixels per output pixel
    margin = math.ceil(4 * max(step, 1.0)) + 2  # twice the kernel radius (2 * step) and rounding
    left, top = (side - width) // 2, (side - height) // 2
    x0, x1 = max(0, left - margin), min(side, left + width + margin)
    y0, y1 = max(0, top - margin), min(side, top + height + margin)
    # Output pixels whose input footprint lies inside the window (all of them along an edge it reaches).
    o0 = 0 if x0 == 0 else math.ceil(x0 / step)
    o1 = size if x1 == side else min(size, math.floor(x1 / step))
    p0 = 0 if y0 == 0 else math.ceil(y0 / step)
    p1 = size if y1 == side else min(size, math.floor(y1 / step))
    box = (o0 * step - x0, p0 * step - y0, min(o1 * step - x0, x1 - x0), min(p1 * step - y0, y1 - y0))
    return _ResizePlan((x0, y0, x1, y1), (left - x0, top - y0), (o0, p0, o1, p1), box)


def padded_resize(image: Image.Image, size: int, fill: tuple[int, int, int]) -> Image.Image:
    """`pad_to_square(image, fill).resize((size, size), BICUBIC)`, resizing only the image's part.

    The padding is flat colour, so resizing it is wasted work (a third of the pixels of a 4:3
    photo). Only the output pixels whose bicubic kernel reaches the image are computed, from the
    image plus a margin of padding as wide as the kernel, at exactly the positions the full
    square would put them; the rest is the fill colour, which is what the kernel gives there.
    PIL rounds and clips to 8 bits between its two passes and orders the passes by shape, so
    on photos about 0.5% of values land a few levels apart (mean difference 0.005 of 255).
    """
    width, height = image.size
    if width == height:
        return image.resize((size, size), Image.Resampling.BICUBIC)
    plan = _plan(width, height, size)
    x0, y0, x1, y1 = plan.window
    window = Image.new(image.mode, (x1 - x0, y1 - y0), fill)
    window.paste(image, plan.paste)
    o0, p0, o1, p1 = plan.part
    part = window.resize((o1 - o0, p1 - p0), Image.Resampling.BICUBIC, box=plan.box)
    out = Image.new(image.mode, (size, size), fill)
    out.paste(part, (o0, p0))
    return out


def pixel_values(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """CHW float32 array ready for the vision tower (pad to square, bicubic resize, normalize).

    Pass the image as opened, before `load()`: a JPEG is then decoded straight at the smallest
    DCT scale (1/2, 1/4, 1/8) that still covers the target size, which is most of the decode
    cost of a large photo and a better anti-alias than bicubic alone. Other formats, or an image
    already loaded, go the plain way.
    """
    _decode_at_scale(image, spec.size)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return normalize(padded_resize(image, spec.size, pad_fill(spec.mean)), spec)


def pad_fill(mean: tuple[float, ...]) -> tuple[int, ...]:
    """The padding colour: the mean in 8 bits, truncated as LLaVA's `expand2square` call and transformers'
    `LlavaImageProcessor` do (CLIP's mean gives (122, 116, 104)), so exported processors pad alike."""
    return tuple(int(channel * 255) for channel in mean)


def normalize(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """RGB image -> CHW float32 `(x / 255 - mean) / std`, by table lookup.

    Bit-identical to that arithmetic in float32 (the table holds its result for each of the 256
    byte values), done by PIL per channel in one pass instead of four NumPy passes and a transpose.
    """
    tables = _normalize_tables(spec.mean, spec.std)
    out = np.empty((3, image.height, image.width), np.float32)
    for channel, band in enumerate(image.split()):
        out[channel] = np.asarray(band.point(tables[channel], "F"))
    return out


@functools.lru_cache(maxsize=8)
def _normalize_tables(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[list[float], ...]:
    values = np.arange(256, dtype=np.float32)[None, :] / 255.0
    table = (values - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    return tuple(row.tolist() for row in table)


def _dct_factor(width: int, height: int, size: int) -> int:
    """The reduction PIL's `draft` picks for `size` once padded: the largest of 8, 4, 2 that still covers it, or 1."""
    scale = size / max(width, height)
    reduction = min(width // max(1, math.ceil(width * scale)), height // max(1, math.ceil(height * scale)))
    return next((factor for factor in (8, 4, 2) if reduction >= factor), 1)


def _decode_at_scale(image: Image.Image, size: int) -> None:
    """Ask the JPEG decoder for the least pixels that still cover `size` once padded to square."""
    width, height = image.size
    scale = size / max(width, height)
    # A no-op for anything but an unloaded JPEG; it never goes below the requested size.
    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def decode(data: bytes, size: int) -> np.ndarray:
    """An RGB HWC uint8 array from encoded bytes, decoded at the least resolution that still covers `size` padded.

    JPEGs are decoded by libjpeg-turbo at the power-of-two DCT scale PIL's draft mode would pick (1/2, 1/4, 1/8
    of the pixels when that still covers the target), without PIL's per-image overhead: the pixels are
    identical to `pixel_values`' PIL path (tested). libjpeg-turbo's other M/8 scales would be faster still,
    but leave a near-1:1 resize that drifts several grey levels from a full-resolution decode. Any other
    format, or a JPEG libjpeg-turbo refuses (CMYK), goes through PIL.

    Raises:
        OSError / ValueError: the bytes are not a readable image.
    """
    if data[:2] == b"\xff\xd8":
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            factor = _dct_factor(width, height, size)
            return simplejpeg.decode_jpeg(
                data, colorspace="RGB", min_height=-(-height // factor), min_width=-(-width // factor)
            )
        except ValueError:
            pass  # PIL decides, and raises its own error for bad data
    image = Image.open(io.BytesIO(data))
    _decode_at_scale(image, size)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def square_pixels(data: bytes, spec: ImageSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Decode, pad to square with the mean colour, bicubic-resize: `padded_resize` as an HWC uint8 array.

    The padded window and the output are composed in NumPy, so the pixels are copied as few times as the
    work allows; with `out` (a slot of a batch array) the result is written there directly.
    """
    pixels = decode(data, spec.size)
    fill = np.asarray(pad_fill(spec.mean), np.uint8)
    size = spec.size
    out = np.empty((size, size, 3), np.uint8) if out is None else out
    height, width = pixels.shape[:2]
    if width == height:
        out[:] = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))
        return out
    plan = _plan(width, height, size)
    x0, y0, x1, y1 = plan.window
    window = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    window[:] = fill
    left, top = plan.paste
    window[top : top + height, left : left + width] = pixels
    o0, p0, o1, p1 = plan.part
    part = Image.fromarray(window).resize((o1 - o0, p1 - p0), Image.Resampling.BICUBIC, box=plan.box)
    out[:] = fill
    out[p0:p1, o0:o1] = np.asarray(part)
    return out


def normalize_pixels(pixels, spec: ImageSpec, dtype):
    """NHWC uint8 tensor (on any device) -> NCHW `(x / 255 - mean) / std` in `dtype`.

    The float32 arithmetic is `normalize`'s, step for step, so the result is bit-identical to CPU preprocessing.
    """
    import torch

    mean = torch.tensor(spec.mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    values = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return ((values - mean) / std).to(dtype)
