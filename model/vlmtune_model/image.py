"""LLaVA-1.5 image preprocessing: pad to square with the CLIP mean colour, resize, normalize.

Pure NumPy + PIL, so preprocessing runs in Ray Data CPU tasks without torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def pixel_values(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """CHW float32 array ready for the vision tower."""
    image = image.convert("RGB")
    fill = tuple(int(round(channel * 255)) for channel in spec.mean)
    square = pad_to_square(image, fill).resize((spec.size, spec.size), Image.Resampling.BICUBIC)
    array = np.asarray(square, dtype=np.float32) / 255.0
    array = (array - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
