"""Generated, in-memory benchmark inputs: Vision-Flan-like records with JPEG images of varied size.

Drawn with the demo suite's task functions, so images have real edges, text and noise (JPEG
decode cost depends on content) and conversations use Vision-Flan's one-instruction-per-task
shape, with `<image>` before or after the instruction as the task dictates.
"""

from __future__ import annotations

import io
import json
import random

import numpy as np

from vlmtune.data.demo import DEMO_TASKS, IMAGE_TOKEN, TASK_SPECS, DrawContext, render_instance

# The digit task needs scikit-learn's digits; every other task draws from the seed alone.
_TASKS = tuple(task for task in DEMO_TASKS if task != "digit_recognition")
_NO_DIGIT = (np.zeros((8, 8)), 0)


def generate_records(
    count: int, *, seed: int = 0, min_side: int = 224, max_side: int = 800, jpeg_quality: int = 90
) -> list[dict]:
    """`count` pipeline records (`image_bytes` inline), sides drawn uniformly in [min_side, max_side].

    The range straddles 336 px, so some images are upscaled and most are downscaled, as with
    COCO-sized (640x480) sources fed to a 336 px tower.
    """
    rng = random.Random(seed)
    records = []
    for index in range(count):
        task = _TASKS[index % len(_TASKS)]
        width, height = rng.randint(min_side, max_side), rng.randint(min_side, max_side)
        image, instruction, answer = render_instance(task, rng, DrawContext(width, height, index, _NO_DIGIT))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=jpeg_quality)
        records.append(
            {
                "key": f"{task}/{index:05d}.jpg",
                "task": task,
                "image": f"{task}/{index:05d}.jpg",
                "image_bytes": buffer.getvalue(),
                "conversations": json.dumps(_conversation(task, instruction, answer)),
            }
        )
    return records


def demo_conversations(per_task: int, *, seed: int = 0) -> list[list[dict]]:
    """Conversations of the demo suite's tasks (all of them), `per_task` each, without images kept.

    Rendering at a tiny size is enough: the template fields (colours, options) are what vary.
    """
    conversations = []
    for task in DEMO_TASKS:
        rng = random.Random(f"{seed}:{task}")
        for index in range(per_task):
            _, instruction, answer = render_instance(task, rng, DrawContext(32, 32, index, _NO_DIGIT))
            conversations.append(_conversation(task, instruction, answer))
    return conversations


def _conversation(task: str, instruction: str, answer: str) -> list[dict]:
    first = TASK_SPECS[task].image_first
    human = f"{IMAGE_TOKEN}\n{instruction}" if first else f"{instruction}\n{IMAGE_TOKEN}"
    return [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
