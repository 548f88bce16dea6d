"""A small, deterministic demo task suite in the exact Vision-Flan annotation schema.

Every task draws a synthetic image whose answer is a short, deterministic function of
what was drawn, so a tiny model can learn it. Like Vision-Flan, each task has ONE
expert-written instruction template; multiple-choice and question tasks fill per-instance
fields into it. Record ids are plain per-task counters, so they collide across tasks
exactly as in the real release (downstream must key by task + image).

Three tasks ask about single-shape images in the answer formats the benchmarks use (a yes/no
question ending "Please answer yes or no." as MME's do, LLaVA-1.5's "Answer the question using
a single word or phrase." as POPE's do, lettered options as MMBench's do), as LLaVA-1.5's and
Vision-Flan's training data hold those formats; the demo benchmarks ask about held-out images only.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FORMAT_VERSION = 2  # 2: single shapes near the centre; the three answer-format tasks
IMAGE_TOKEN = "<image>"
SUITE_FILE = "suite.json"
TRAIN_FILE = "annotations_train.json"
HELDOUT_FILE = "annotations_heldout.json"

RGB = tuple[int, int, int]
PALETTE: Mapping[str, RGB] = MappingProxyType(
    {
        "red": (220, 40, 40),
        "green": (40, 170, 60),
        "blue": (40, 80, 220),
        "yellow": (235, 205, 30),
        "purple": (140, 60, 180),
        "orange": (245, 140, 20),
    }
)
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")
_LIGHT_BACKGROUNDS: tuple[RGB, ...] = ((240, 240, 240), (250, 247, 238), (232, 237, 243))
_TEXT_COLORS: tuple[RGB, ...] = ((20, 20, 20), (25, 30, 110), (110, 20, 20))
_NOISE = 6  # light enough that every drawn colour stays far from the background
YES_NO = " Please answer yes or no."  # how every MME question ends
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."  # LLaVA-1.5's short-answer prompt (POPE's)
OPTION_LETTER = "\nAnswer with the option's letter from the given choices directly."  # LLaVA-1.5's (MMBench's)


class DrawContext(NamedTuple):
    width: int
    height: int
    index: int  # instance index within its split; used to balance yes/no answers exactly
    digit: tuple[np.ndarray, int]  # (8x8 sklearn digit, label); only the digits task reads it


Drawn = tuple[Image.Image, str, dict[str, str]]  # (image, answer, template fields)


@dataclass(frozen=True)
class TaskSpec:
    template: str
    draw: Callable[[random.Random, DrawContext], Drawn]
    image_first: bool  # Vision-Flan puts <image> first for some tasks and last for others
    aspect: str = "square"  # "square" | "wide" | "tall"; non-square exercises pad-to-square


@dataclass(frozen=True)
class DemoSuite:
    root: Path
    train_annotations: Path
    heldout_annotations: Path
    tasks: tuple[str, ...]
    n_train: int
    n_heldout: int


# ---------------------------------------------------------------- drawing helpers


def _noisy(rng: random.Random, ctx: DrawContext, base: np.ndarray) -> Image.Image:
    noise = np.random.default_rng(rng.getrandbits(64)).integers(
        -_NOISE, _NOISE + 1, size=(ctx.height, ctx.width, 3), dtype=np.int16
    )
    return Image.fromarray(np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8))


def _canvas(rng: random.Random, ctx: DrawContext, bg: RGB) -> Image.Image:
    return _noisy(rng, ctx, np.asarray(bg))


def _light_canvas(rng: random.Random, ctx: DrawContext) -> Image.Image:
    return _canvas(rng, ctx, rng.choice(_LIGHT_BACKGROUNDS))


def _draw_shape(img: Image.Image, kind: str, cx: int, cy: int, r: int, fill: RGB) -> None:
    draw = ImageDraw.Draw(img)
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        raise ValueError(f"unknown shape {kind!r}")


def _random_centre(rng: random.Random, ctx: DrawContext, r: int) -> tuple[int, int]:
    return (rng.randint(r + 1, max(r + 1, ctx.width - r - 2)), rng.randint(r + 1, max(r + 1, ctx.height - r - 2)))


def _grid_centres(
    rng: random.Random, ctx: DrawContext, k: int, cols: int, rows: int
) -> tuple[list[tuple[int, int]], int]:
    """k centres in distinct grid cells: objects never overlap, so counts stay exact."""
    cw, ch = ctx.width / cols, ctx.height / rows
    r = max(1, int(min(cw, ch) * 0.3))
    jitter = max(0.0, min(cw, ch) / 2 - r - 1)
    centres = []
    for cell in rng.sample(range(cols * rows), k):
        cx = (cell % cols + 0.5) * cw + rng.uniform(-jitter, jitter)
        cy = (cell // cols + 0.5) * ch + rng.uniform(-jitter, jitter)
        centres.append((int(cx), int(cy)))
    return centres, r


def _single_shape(rng: random.Random, ctx: DrawContext) -> tuple[Image.Image, str, str]:
    """One large shape near the centre: what tells a circle from a square (corners, a triangle's apex) then lies
    at about the same image patches every time, which a tiny model learns in hundreds of steps rather than
    the thousands a shape anywhere in the image takes."""
    img = _light_canvas(rng, ctx)
    kind, color = rng.choice(SHAPES), rng.choice(COLORS)
    s = min(ctx.width, ctx.height)
    r = rng.randint(max(2, int(s * 0.3)), max(2, int(s * 0.4)))
    jitter = max(1, s // 16)
    cx = ctx.width // 2 + rng.randint(-jitter, jitter)
    cy = ctx.height // 2 + rng.randint(-jitter, jitter)
    _draw_shape(img, kind, cx, cy, r, PALETTE[color])
    return img, kind, color


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def nearest_color(rgb: tuple[float, ...]) -> str:
    """Name of the palette colour closest to ``rgb`` (used by tests to re-derive answers)."""
    return min(COLORS, key=lambda c: sum((a - b) ** 2 for a, b in zip(PALETTE[c], rgb)))


# ---------------------------------------------------------------- one function per task


def _shape_name(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, kind, _ = _single_shape(rng, ctx)
    return img, kind, {}


def _shape_color(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, _, color = _single_shape(rng, ctx)
    return img, color, {}


def _color_choice(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, _, color = _single_shape(rng, ctx)
    options = [color, *rng.sample([c for c in COLORS if c != color], 3)]
    rng.shuffle(options)
    letters = "ABCD"
    text = " ".join(f"({letter}) {c}" for letter, c in zip(letters, options))
    return img, letters[options.index(color)], {"options": text}


def _yes_no_question(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, kind, color = _single_shape(rng, ctx)
    yes = ctx.index % 2 == 0
    if rng.random() < 0.5:
        asked = kind if yes else rng.choice([s for s in SHAPES if s != kind])
        question = f"Is there a {asked} in the image?"
    else:
        asked = color if yes else rng.choice([c for c in COLORS if c != color])
        question = f"Is the shape in the image {asked}?"
    return img, "yes" if yes else "no", {"question": question}


def _short_answer_question(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, kind, color = _single_shape(rng, ctx)
    ask = ctx.index % 4  # existence (yes), existence (no), colour, shape: balanced yes/no within a split
    if ask < 2:
        asked = kind if ask == 0 else rng.choice([s for s in SHAPES if s != kind])
        return img, "yes" if ask == 0 else "no", {"question": f"Is there a {asked} in the image?"}
    if ask == 2:
        return img, color, {"question": "What is the color of the shape?"}
    return img, kind, {"question": "Which shape is shown in the image?"}


def _option_letter_question(rng: random.Random, ctx: DrawContext) -> Drawn:
    img, kind, color = _single_shape(rng, ctx)
    if rng.random() < 0.5:
        question, answer, options = "Which shape is shown in the image?", kind, list(SHAPES)
    else:
        question, answer = "What is the color of the shape in the image?", color
        options = [color, *rng.sample([c for c in COLORS if c != color], 3)]
    rng.shuffle(options)
    block = "\n".join(f"{letter}. {option}" for letter, option in zip("ABCD", options))
    return img, "ABCD"[options.index(answer)], {"question": question, "options": block}


def _dot_count(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    n = rng.randint(1, 5)
    centres, r = _grid_centres(rng, ctx, n, cols=3, rows=2)
    color = PALETTE[rng.choice(COLORS)]
    for cx, cy in centres:
        _draw_shape(img, "circle", cx, cy, r, color)
    return img, NUMBER_WORDS[n], {}


def _shape_position(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    w, h = ctx.width, ctx.height
    r = max(2, min(w, h) // 8)
    where = rng.choice(("left", "right", "top", "bottom"))
    jx, jy = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.08, 0.08) * h
    cx, cy = {
        "left": (0.18 * w, h / 2 + jy),
        "right": (0.82 * w, h / 2 + jy),
        "top": (w / 2 + jx, 0.18 * h),
        "bottom": (w / 2 + jx, 0.82 * h),
    }[where]
    cx, cy = min(max(int(cx), r + 1), w - r - 2), min(max(int(cy), r + 1), h - r - 2)
    _draw_shape(img, rng.choice(SHAPES), cx, cy, r, PALETTE[rng.choice(COLORS)])
    return img, where, {}


def _object_existence(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    combos = [(c, s) for c in COLORS for s in SHAPES]
    objects = rng.sample(combos, rng.randint(1, 3))
    centres, r = _grid_centres(rng, ctx, len(objects), cols=3, rows=3)
    for (color, kind), (cx, cy) in zip(objects, centres):
        _draw_shape(img, kind, cx, cy, r, PALETTE[color])
    present = ctx.index % 2 == 0
    color, kind = rng.choice(objects if present else [c for c in combos if c not in objects])
    return img, "yes" if present else "no", {"color": color, "shape": kind}


def _read_text(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    text = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 4)))
    font = _font(max(8, int(min(ctx.width, ctx.height) / 4.5)))
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = rng.randint(0, max(0, ctx.width - (right - left))) - left
    y = rng.randint(0, max(0, ctx.height - (bottom - top))) - top
    draw.text((x, y), text, fill=rng.choice(_TEXT_COLORS), font=font)
    return img, text, {}


def _bigger_shape(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    w, h = ctx.width, ctx.height
    big = max(3, min(int(h * 0.3), w // 4 - 2))
    small = max(1, int(big * rng.uniform(0.45, 0.65)))
    bigger = rng.choice(("left", "right"))
    kind = rng.choice(SHAPES)
    for side, cx in (("left", w // 4), ("right", 3 * w // 4)):
        r = big if side == bigger else small
        cy = h // 2 + rng.randint(-(h // 2 - big - 1), h // 2 - big - 1)
        _draw_shape(img, kind, cx, cy, r, PALETTE[rng.choice(COLORS)])
    return img, bigger, {}


def _color_count_compare(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    first, second = rng.sample(COLORS, 2)
    n_first, n_second = rng.sample(range(1, 5), 2)
    centres, r = _grid_centres(rng, ctx, n_first + n_second, cols=3, rows=3)
    for i, (cx, cy) in enumerate(centres):
        _draw_shape(img, "circle", cx, cy, r, PALETTE[first if i < n_first else second])
    answer = first if n_first > n_second else second
    return img, answer, {"first": first, "second": second}


def _line_orientation(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    s = min(ctx.width, ctx.height)
    half = rng.randint(int(s * 0.25), int(s * 0.38))
    cx = ctx.width // 2 + rng.randint(-s // 10, s // 10)
    cy = ctx.height // 2 + rng.randint(-s // 10, s // 10)
    kind = rng.choice(("horizontal", "vertical", "diagonal"))
    dx, dy = {
        "horizontal": (half, 0),
        "vertical": (0, half),
        "diagonal": (int(half * 0.75), int(half * 0.75) * rng.choice((-1, 1))),
    }[kind]
    ImageDraw.Draw(img).line(
        [(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=PALETTE[rng.choice(COLORS)], width=max(2, s // 16)
    )
    return img, kind, {}


def _background_color(rng: random.Random, ctx: DrawContext) -> Drawn:
    color = rng.choice(COLORS)
    img = _canvas(rng, ctx, PALETTE[color])
    r = max(2, min(ctx.width, ctx.height) // 10)
    fill = rng.choice(((255, 255, 255), (15, 15, 15)))
    _draw_shape(img, rng.choice(SHAPES), *_random_centre(rng, ctx, r), r, fill)
    return img, color, {}


def _more_circles(rng: random.Random, ctx: DrawContext) -> Drawn:
    img = _light_canvas(rng, ctx)
    hi, lo = sorted(rng.sample(range(5), 2), reverse=True)
    yes = ctx.index % 2 == 0
    kinds = ["circle"] * (hi if yes else lo) + ["square"] * (lo if yes else hi)
    centres, r = _grid_centres(rng, ctx, len(kinds), cols=3, rows=3)
    for kind, (cx, cy) in zip(kinds, centres):
        _draw_shape(img, kind, cx, cy, r, PALETTE[rng.choice(COLORS)])
    return img, "yes" if yes else "no", {}


def _digit(rng: random.Random, ctx: DrawContext) -> Drawn:
    pixels, label = ctx.digit
    grey = Image.fromarray((255 - pixels * (255 / 16)).astype(np.uint8))  # dark ink on white
    base = np.asarray(grey.resize((ctx.width, ctx.height), Image.Resampling.BILINEAR))
    return _noisy(rng, ctx, base[..., None]), str(label), {}


TASK_SPECS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "shape_name": TaskSpec(
            "Identify the geometric shape in the image. Answer with one word: circle, square, or triangle.",
            _shape_name,
            image_first=True,
        ),
        "shape_color": TaskSpec(
            "What is the color of the shape shown in the image? Answer with a single color name.",
            _shape_color,
            image_first=False,
        ),
        "dot_count": TaskSpec(
            "Count the dots in the image. Answer with the number written as an English word.",
            _dot_count,
            image_first=True,
            aspect="wide",
        ),
        "shape_position": TaskSpec(
            "Where is the shape located in the image? Answer with one of: left, right, top, bottom.",
            _shape_position,
            image_first=False,
        ),
        "object_existence": TaskSpec(
            "Answer the question about the image with yes or no. Question: Is there a {color} {shape} in the image?",
            _object_existence,
            image_first=False,
        ),
        "text_reading": TaskSpec(
            "Read the uppercase letters written in the image and answer with exactly those letters.",
            _read_text,
            image_first=True,
        ),
        "bigger_shape": TaskSpec(
            "The image shows two shapes side by side. Which one is bigger? Answer left or right.",
            _bigger_shape,
            image_first=False,
            aspect="wide",
        ),
        "color_choice": TaskSpec(
            "Select the color of the shape in the image and answer with the option letter.\nOptions: {options}",
            _color_choice,
            image_first=False,
        ),
        "color_count_compare": TaskSpec(
            "Count the dots of each color. Which color has more dots in "
            "the image, {first} or {second}? Answer with the color name.",
            _color_count_compare,
            image_first=True,
        ),
        "line_orientation": TaskSpec(
            "What is the orientation of the line in the image? Answer horizontal, vertical, or diagonal.",
            _line_orientation,
            image_first=False,
            aspect="tall",
        ),
        "background_color": TaskSpec(
            "What is the background color of the image? Answer with a single color name.",
            _background_color,
            image_first=True,
        ),
        "more_circles": TaskSpec(
            "Look at the shapes in the image. Are there more circles than squares? Answer yes or no.",
            _more_circles,
            image_first=False,
        ),
        "digit_recognition": TaskSpec(
            "The image shows a handwritten digit. Which digit from 0 to 9 is it? Answer with the digit only.",
            _digit,
            image_first=True,
        ),
        # LLaVA-1.5's prompts, word for word: a per-instance question, then the answer format.
        "yes_no_question": TaskSpec("{question}" + YES_NO, _yes_no_question, image_first=False),
        "short_answer_question": TaskSpec("{question}" + SHORT_ANSWER, _short_answer_question, image_first=True),
        "option_letter_question": TaskSpec(
            "{question}\n{options}" + OPTION_LETTER, _option_letter_question, image_first=False
        ),
    }
)
FORMAT_TASKS: tuple[str, ...] = ("yes_no_question", "short_answer_question", "option_letter_question")
"""The tasks that teach the benchmarks' answer formats (the rest teach what to see)."""
DEMO_TASKS: tuple[str, ...] = tuple(TASK_SPECS)


# ---------------------------------------------------------------- suite writing


def _derive_seed(seed: int, *parts: str) -> int:
    # sha256 rather than hash(): str hashing is salted per process, which would break determinism
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def image_dims(task: str, image_size: int) -> tuple[int, int]:
    """(width, height) of the task's images."""
    short = image_size * 3 // 4
    return {"square": (image_size, image_size), "wide": (image_size, short), "tall": (short, image_size)}[
        TASK_SPECS[task].aspect
    ]


def digit_indices(seed: int, per_task: int, heldout_per_task: int, n_digits: int = 1797) -> tuple[list[int], list[int]]:
    """sklearn digit sample indices for (train, heldout); the two pools are disjoint."""
    perm = random.Random(_derive_seed(seed, "digits", "perm")).sample(range(n_digits), n_digits)
    n_held_pool = min(heldout_per_task, n_digits // 2)
    held_pool, train_pool = perm[:n_held_pool], perm[n_held_pool:]
    train = [train_pool[i % len(train_pool)] for i in range(per_task)]
    held = [held_pool[i % len(held_pool)] for i in range(heldout_per_task)]
    return train, held


def render_instance(task: str, rng: random.Random, ctx: DrawContext) -> tuple[Image.Image, str, str]:
    """(image, instruction, answer) for one instance of ``task``."""
    spec = TASK_SPECS[task]
    image, answer, fields = spec.draw(rng, ctx)
    return image, spec.template.format(**fields), answer


def _validate(per_task: int, heldout_per_task: int, image_size: int) -> None:
    for name, value, low in (
        ("per_task", per_task, 1),
        ("heldout_per_task", heldout_per_task, 0),
        ("image_size", image_size, 16),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _params(per_task: int, heldout_per_task: int, seed: int, image_size: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "per_task": per_task,
        "heldout_per_task": heldout_per_task,
        "seed": seed,
        "image_size": image_size,
        "tasks": list(DEMO_TASKS),
    }


def _record(task: str, i: int, rel_path: str, instruction: str, answer: str) -> dict[str, Any]:
    image_first = TASK_SPECS[task].image_first
    human = f"{IMAGE_TOKEN}\n{instruction}" if image_first else f"{instruction}\n{IMAGE_TOKEN}"
    return {
        "id": str(i),
        "image": rel_path,
        "task_name": task,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
    }


def _write_task(
    root: Path,
    task: str,
    seed: int,
    counts: dict[str, int],
    image_size: int,
    digits: Any,
    indices: dict[str, list[int]],
) -> dict[str, list[dict[str, Any]]]:
    width, height = image_dims(task, image_size)
    (root / "images" / task).mkdir(parents=True, exist_ok=True)
    train_pixels: set[bytes] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for split in ("train", "heldout"):
        rng = random.Random(_derive_seed(seed, task, split))
        records = []
        for i in range(counts[split]):
            k = indices[split][i]
            ctx = DrawContext(width, height, i, (digits.images[k], int(digits.target[k])))
            for _ in range(100):  # held-out images must never duplicate a training image
                image, instruction, answer = render_instance(task, rng, ctx)
                key = hashlib.sha256(image.tobytes()).digest()
                if split == "train" or key not in train_pixels:
                    break
            else:
                raise RuntimeError(f"could not draw a held-out image for {task} unseen in train")
            if split == "train":
                train_pixels.add(key)
            rel = f"images/{task}/{split}_{i:05d}.png"
            image.save(root / rel, format="PNG", optimize=False, compress_level=1)
            records.append(_record(task, i, rel, instruction, answer))
        out[split] = records
    return out


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _suite(root: Path, meta: Mapping[str, Any]) -> DemoSuite:
    return DemoSuite(
        root=root,
        train_annotations=root / TRAIN_FILE,
        heldout_annotations=root / HELDOUT_FILE,
        tasks=tuple(meta["params"]["tasks"]),
        n_train=int(meta["counts"]["train"]),
        n_heldout=int(meta["counts"]["heldout"]),
    )


def write_demo_suite(
    out_dir: str | os.PathLike[str],
    *,
    per_task: int = 64,
    heldout_per_task: int = 16,
    seed: int = 0,
    image_size: int = 64,
) -> DemoSuite:
    """Write the demo suite under ``out_dir`` (overwriting a previous one) and describe it."""
    from sklearn.datasets import load_digits  # deferred: importing sklearn costs about a second

    _validate(per_task, heldout_per_task, image_size)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    suite_file = root / SUITE_FILE
    if suite_file.exists():
        # Only a directory we wrote before gets its images wiped, to drop stale files.
        suite_file.unlink()
        shutil.rmtree(root / "images", ignore_errors=True)
    digits = load_digits()
    train_idx, held_idx = digit_indices(seed, per_task, heldout_per_task, len(digits.target))
    counts = {"train": per_task, "heldout": heldout_per_task}
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "heldout": []}
    for task in DEMO_TASKS:
        written = _write_task(root, task, seed, counts, image_size, digits, {"train": train_idx, "heldout": held_idx})
        for split, records in written.items():
            splits[split].extend(records)
    _dump(root / TRAIN_FILE, splits["train"])
    _dump(root / HELDOUT_FILE, splits["heldout"])
    # suite.json goes last: its presence marks a complete suite for ensure_demo_suite.
    meta = {
        "params": _params(per_task, heldout_per_task, seed, image_size),
        "counts": {"train": len(splits["train"]), "heldout": len(splits["heldout"])},
        "train_annotations": TRAIN_FILE,
        "heldout_annotations": HELDOUT_FILE,
    }
    _dump(suite_file, meta)
    return _suite(root, meta)


def ensure_demo_suite(
    out_dir: str | os.PathLike[str],
    *,
    per_task: int = 64,
    heldout_per_task: int = 16,
    seed: int = 0,
    image_size: int = 64,
) -> DemoSuite:
    """Load the suite under ``out_dir`` if it was written with these parameters, else write it."""
    _validate(per_task, heldout_per_task, image_size)
    root = Path(out_dir)
    try:
        meta = json.loads((root / SUITE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    if (
        isinstance(meta, dict)
        and meta.get("params") == _params(per_task, heldout_per_task, seed, image_size)
        and (root / TRAIN_FILE).is_file()
        and (root / HELDOUT_FILE).is_file()
    ):
        return _suite(root, meta)
    return write_demo_suite(
        root, per_task=per_task, heldout_per_task=heldout_per_task, seed=seed, image_size=image_size
    )
