"""A synthetic dataset in Vision-Flan's release format, at any size: one annotation JSON, one small image file per
record.

Like the release: 191 tasks with one instruction template each, `<image>` before or after the
instruction by task, ids that repeat across tasks, images as files below one folder. The records
are written as they are made (the JSON list is streamed), so a 1.66M-instance dataset costs no
memory to produce; image bytes come from a pool of distinct small JPEGs, so writing files, not
encoding them, is the cost.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ANNOTATIONS = "annotations.json"
IMAGES = "images"
_POOL = 1009  # distinct JPEGs (a prime, so records cycle through them out of step with tasks)
_ANSWERS = ("yes", "no", "red", "blue", "two", "a cat", "the left one", "12", "circle", "none of them")


@dataclass(frozen=True)
class SyntheticDataset:
    root: Path
    annotations: Path
    images: Path
    instances: int
    tasks: int


def write_vision_flan_like(
    root: str | Path, instances: int, tasks: int = 191, seed: int = 0, image_side: int = 48, answer_words: int = 0
) -> SyntheticDataset:
    """Write (or reuse, when complete) `instances` records in `tasks` tasks below `root`.

    Answers are Vision-Flan's short ones, or with `answer_words` that many words (samples long enough
    that maxLength truncates every one to the same length: `vlmtune bench e2e`).
    """
    root = Path(root)
    done = root / "complete.json"
    expected = {"instances": instances, "tasks": tasks, "seed": seed, "image_side": image_side}
    if answer_words:
        expected["answer_words"] = answer_words
    dataset = SyntheticDataset(root, root / ANNOTATIONS, root / IMAGES, instances, tasks)
    if done.exists() and json.loads(done.read_text()) == expected:
        return dataset
    pool = _jpeg_pool(seed, image_side)
    rng = random.Random(seed)
    templates = [_template(task, rng) for task in range(tasks)]
    for task in range(tasks):
        (dataset.images / _task_name(task)).mkdir(parents=True, exist_ok=True)
    with open(dataset.annotations, "w", encoding="utf-8") as out:
        out.write("[")
        for index in range(instances):
            task = index % tasks
            image = f"{_task_name(task)}/{index // tasks:07d}.jpg"
            (dataset.images / image).write_bytes(pool[index % _POOL])
            record = {
                "id": str(index // tasks),
                "image": image,
                "task_name": _task_name(task),
                "conversations": [
                    {"from": "human", "value": templates[task].format(index=index)},
                    {"from": "gpt", "value": _answer(index, task, answer_words)},
                ],
            }
            out.write(("," if index else "") + json.dumps(record))
        out.write("]")
    done.write_text(json.dumps(expected))
    return dataset


def _answer(index: int, task: int, words: int) -> str:
    if not words:
        return _ANSWERS[(index * 7 + task) % len(_ANSWERS)]
    return " ".join(_ANSWERS[(index * 7 + task + i) % len(_ANSWERS)] for i in range(words))


def _task_name(task: int) -> str:
    return f"vf_task_{task:03d}"


def _template(task: int, rng: random.Random) -> str:
    words = " ".join(
        rng.choice(("describe", "count", "which", "colour", "object", "scene", "answer", "briefly", "option", "region"))
        for _ in range(rng.randint(6, 40))
    )
    instruction = f"Task {task}: {words}. Item {{index}}."
    return f"<image>\n{instruction}" if task % 3 else f"{instruction}\n<image>"  # Vision-Flan puts it either side


def _jpeg_pool(seed: int, side: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(_POOL):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        pool.append(buffer.getvalue())
    return pool
