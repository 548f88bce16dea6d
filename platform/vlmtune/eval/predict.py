"""Batched generation on Ray: Ray Data `map_batches` over an actor pool, one model loaded per actor.

The same code runs on embedded Ray (a laptop) and on a cluster (a RayJob); actors on GPU nodes take a GPU each.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import ray

from vlmtune.eval.items import Question
from vlmtune.spec import GenerationSpec, ResourcesSpec


class Answerer:
    """A Ray Data actor: loads the model once, then answers batches of questions.

    Rows are `{row, prompt, image, system, max_new_tokens, temperature}` (empty image bytes: a text-only
    question; empty system: the template's own); a batch mixing kinds is answered one kind at a time.
    """

    def __init__(self, model_uri: str | None, max_new_tokens: int):
        import torch

        from vlmtune.eval.generation import load_model
        from vlmtune.node_cache import local_copy

        device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.built = load_model(None if model_uri is None else local_copy(model_uri), device)
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from vlmtune.eval.generation import generate

        questions = [_question(batch, index) for index in range(len(batch["row"]))]
        answers: list[str] = [""] * len(questions)
        groups: dict[tuple, list[int]] = {}
        for index, question in enumerate(questions):
            groups.setdefault(question.settings, []).append(index)
        for indices in groups.values():
            # The batch's first row id seeds sampling: the same questions sample the same answers on a rerun.
            seed = int(batch["row"][indices[0]])
            for index, answer in zip(
                indices, generate(self.built, [questions[i] for i in indices], self.max_new_tokens, seed)
            ):
                answers[index] = answer
        return {"row": batch["row"], "prediction": np.array(answers, dtype=object)}


def _question(batch: dict[str, np.ndarray], index: int):
    from vlmtune.eval.items import Question

    image = bytes(batch["image"][index])
    system = str(batch["system"][index])
    return Question(
        str(batch["prompt"][index]),
        image or None,
        system or None,
        int(batch["max_new_tokens"][index]) or None,
        float(batch["temperature"][index]),
    )


def predict(
    questions: Sequence[Question],
    model_uri: str | None,
    generation: GenerationSpec,
    resources: ResourcesSpec,
    show_progress: bool = False,
) -> list[str]:
    """The model's answer to every question, in order.

    Args:
        questions: questions with images (a benchmark's), or text-only ones (a judge's prompts).
        model_uri: exported model (local, s3:// or hub id); None for the tiny preset.
        generation: default max new tokens, and questions per generate() call.
        resources: actors (`workers`) and what each reserves.
    """
    if not questions:
        return []
    # Questions of one kind, and of similar prompt lengths, side by side: batches then need no splitting and carry
    # little left padding.
    order = sorted(range(len(questions)), key=lambda i: (_kind(questions[i]), len(questions[i].prompt)))
    rows = [
        {
            "row": i,
            "prompt": questions[i].prompt,
            "image": questions[i].image or b"",
            "system": questions[i].system or "",
            "max_new_tokens": questions[i].max_new_tokens or 0,
            "temperature": questions[i].temperature,
        }
        for i in order
    ]
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
    predictions: list[str | None] = [None] * len(questions)
    for row in answered.iter_rows():
        predictions[int(row["row"])] = str(row["prediction"])
    if any(prediction is None for prediction in predictions):
        raise RuntimeError("generation returned fewer answers than questions")
    return predictions


def _kind(question: Question) -> tuple:
    return (question.image is None, question.system or "", question.max_new_tokens or 0, question.temperature)
