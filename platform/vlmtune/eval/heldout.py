"""Held-out Vision-Flan tasks: the task's own instruction as the prompt, scored by exact or option match.

Data layout: a Vision-Flan annotation JSON (`[{id, image, task_name, conversations}]`) with images relative to
it (or to `images`), read by the same reader as training data, so bad records are skipped, never fatal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vlmtune import storage
from vlmtune.eval.choice import extract_option
from vlmtune.eval.items import Item, take_per_group

# "(A) red (B) blue": Vision-Flan's most common way of listing options inside an instruction.
_OPTION = re.compile(r"\(([A-Za-z])\)\s*([^()\n]*?)\s*(?=\([A-Za-z]\)|\n|$)")


def parse_options(instruction: str) -> dict[str, str]:
    """Letter -> option text for options written `(A) text (B) text ...`; empty when there are fewer than two."""
    options = {letter.upper(): text.strip() for letter, text in _OPTION.findall(instruction) if text.strip()}
    return options if len(options) >= 2 else {}


def normalize(text: str | None) -> str:
    """Lowercase, single spaces, no surrounding quotes or trailing full stop: the form exact match compares."""
    text = " ".join(str(text or "").lower().split())
    return text.strip("\"'`").rstrip(".!").strip()


def is_right(answer: str, prediction: str | None, options: dict[str, str]) -> bool:
    """Exact match after `normalize`, or, when the instruction lists options, the same option chosen.

    The answer may be the option letter or the option's text; either way a prediction naming the other form
    of the same option is right.
    """
    if normalize(prediction) == normalize(answer):
        return True
    if not options:
        return False
    letter = answer.strip().strip("()").upper()
    if letter not in options:
        matching = [key for key, text in options.items() if normalize(text) == normalize(answer)]
        if len(matching) != 1:
            return False
        letter = matching[0]
    return extract_option(prediction, options) == letter


@dataclass(frozen=True)
class HeldoutRow:
    task: str
    answer: str
    prediction: str | None
    options: dict


def score(rows: Sequence[HeldoutRow]) -> dict:
    """Accuracy per task, over all instances (micro) and averaged over tasks (macro)."""
    tasks: dict[str, list[bool]] = {}
    for row in rows:
        tasks.setdefault(row.task, []).append(is_right(row.answer, row.prediction, row.options))
    per_task = {
        task: {"accuracy": sum(right) / len(right), "questions": len(right)} for task, right in sorted(tasks.items())
    }
    total = sum(len(right) for right in tasks.values())
    return {
        "accuracy": sum(sum(right) for right in tasks.values()) / total if total else 0.0,
        "meanTaskAccuracy": sum(t["accuracy"] for t in per_task.values()) / len(per_task) if per_task else 0.0,
        "questions": total,
        "tasks": per_task,
    }


def load(
    uri: str,
    limit: int | None = None,
    images: str | None = None,
    tasks: Sequence[str] | None = None,
    read_images: bool = True,
) -> list[Item]:
    """Held-out instances; `limit` counts instances per task, `tasks` keeps only those tasks.

    Scoring saved predictions needs no pixels: `read_images=False` leaves `image` unset.
    """
    # The training reader (skips bad records, keys by task + image) brings torch along: import it only here.
    from vlmtune.data.records import read_annotations
    from vlmtune_model import IMAGE_TOKEN, normalize_turns

    records, _ = read_annotations(uri, images, "vision-flan")
    items = []
    for record in records:
        if tasks and record["task"] not in tasks:
            continue
        turns = normalize_turns(json.loads(record["conversations"]))
        question = turns[0].text.removeprefix(IMAGE_TOKEN).strip()
        items.append(
            Item(
                question_id=record["key"],
                question=question,
                prompt=question,
                image=None,
                answer=turns[1].text,
                group=record["task"],
                extra={"image": record["image"]},
            )
        )
    kept = take_per_group(items, limit)
    if not read_images:
        return kept
    return [replace(item, image=storage.read_bytes(item.extra["image"])) for item in kept]


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [
            HeldoutRow(item.group, item.answer, prediction, parse_options(item.question))
            for item, prediction in zip(items, predictions, strict=True)
        ]
    )


def headline(result: dict) -> dict[str, float]:
    return {"heldout.accuracy": result["accuracy"], "heldout.meanTaskAccuracy": result["meanTaskAccuracy"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [[task, t["questions"], t["accuracy"] * 100] for task, t in result["tasks"].items()]
    rows.append(["**all**", result["questions"], result["accuracy"] * 100])
    return ["task", "questions", "accuracy %"], rows


def bars(result: dict) -> dict[str, float]:
    return {task: t["accuracy"] for task, t in result["tasks"].items()}
