"""Batched generation on Ray: Ray Data `map_batches` over an actor pool, one model loaded per actor.

The same code runs on embedded Ray (a laptop) and on a cluster (a RayJob); actors on GPU nodes take a GPU each.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import ray

from vlmtune.eval.items import Item
from vlmtune.spec import GenerationSpec, ResourcesSpec


class Answerer:
    """A Ray Data actor: loads the model once, then answers batches of `{row, prompt, image}`."""

    def __init__(self, model_uri: str | None, max_new_tokens: int):
        import torch

        from vlmtune.eval.generation import load_model
        from vlmtune.node_cache import local_copy

        device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.built = load_model(None if model_uri is None else local_copy(model_uri), device)
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from vlmtune.eval.generation import Question, generate

        questions = [Question(str(prompt), bytes(image)) for prompt, image in zip(batch["prompt"], batch["image"])]
        answers = generate(self.built, questions, self.max_new_tokens)
        return {"row": batch["row"], "prediction": np.array(answers, dtype=object)}


def predict(items: Sequence[Item], model_uri: str | None, generation: GenerationSpec, resources: ResourcesSpec,
            show_progress: bool = False) -> list[str]:
    """The model's answer to every item, in item order.

    Args:
        items: questions with images.
        model_uri: exported model (local, s3:// or hub id); None for the tiny preset.
        generation: max new tokens and questions per generate() call.
        resources: actors (`workers`) and what each reserves.
    """
    if not items:
        return []
    missing = [item.question_id for item in items if not item.image]
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no image, e.g. {missing[:3]}")
    # Similar prompt lengths side by side: batches then carry little left padding.
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt))
    rows = [{"row": i, "prompt": items[i].prompt, "image": items[i].image} for i in order]
    context = ray.data.DataContext.get_current()
    # Off a terminal Ray Data turns its bars into INFO log lines every few seconds: keep those out of CI logs.
    context.enable_progress_bars = show_progress and sys.stderr.isatty()
    # About one block per batch: Ray Data's default of hundreds of tiny blocks only adds scheduling overhead.
    blocks = max(resources.workers, -(-len(rows) // generation.batch_size))
    answered = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        Answerer,
        fn_constructor_kwargs={"model_uri": model_uri, "max_new_tokens": generation.max_new_tokens},
        batch_size=generation.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=resources.workers),
        num_cpus=resources.cpus_per_worker,
        num_gpus=resources.gpus_per_worker or None,
    )
    predictions: list[str | None] = [None] * len(items)
    for row in answered.iter_rows():
        predictions[int(row["row"])] = str(row["prediction"])
    if any(prediction is None for prediction in predictions):
        raise RuntimeError("generation returned fewer answers than questions")
    return predictions
