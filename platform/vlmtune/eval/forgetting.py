"""Catastrophic-forgetting suite: image classification sets asked as multiple choice over their label names.

Data layout (vlmtune's own; no standard exists): Parquet with columns `question_id`, `set` (the classification
set, e.g. digits), `question` (the question stem), `image` (`{bytes, path}`) and `label` (the label name).
A set's options are its distinct label names, sorted; the answer is scored with MMBench's letter rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune.eval.choice import ANSWER_INSTRUCTION, LETTERS, extract_option, question_text
from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, read_parquet_rows

MAX_CLASSES = len(LETTERS)


def set_options(labels: Sequence[str]) -> tuple[str, ...]:
    """A set's options: its distinct label names, sorted (so the letters do not depend on file order)."""
    options = tuple(sorted(set(labels)))
    if len(options) > MAX_CLASSES:
        raise ValueError(f"{len(options)} classes do not fit {MAX_CLASSES} option letters; split the set")
    return options


@dataclass(frozen=True)
class ForgettingRow:
    set: str
    label: str
    prediction: str | None
    options: tuple[str, ...]


def score(rows: Sequence[ForgettingRow]) -> dict:
    """Accuracy per set, and their mean (each set weighs the same however many examples it has)."""
    sets: dict[str, list[bool]] = {}
    classes: dict[str, int] = {}
    for row in rows:
        choice = extract_option(row.prediction, dict(zip(LETTERS, row.options)))
        sets.setdefault(row.set, []).append(choice is not None and row.options[LETTERS.index(choice)] == row.label)
        classes[row.set] = len(row.options)
    per_set = {name: {"accuracy": sum(right) / len(right), "questions": len(right), "classes": classes[name]}
               for name, right in sorted(sets.items())}
    return {"meanAccuracy": sum(s["accuracy"] for s in per_set.values()) / len(per_set) if per_set else 0.0,
            "questions": len(rows), "sets": per_set}


def load(uri: str, limit: int | None = None) -> list[Item]:
    """Forgetting-suite questions; `limit` counts examples per set (options come from the whole set)."""
    rows = read_parquet_rows(uri)
    options = {name: set_options([str(row["label"]) for row in rows if row["set"] == name])
               for name in dict.fromkeys(row["set"] for row in rows)}
    items = []
    for row in rows:
        text = question_text(row["question"], options[row["set"]])
        items.append(Item(question_id=str(row["question_id"]), question=text, prompt=f"{text}\n{ANSWER_INSTRUCTION}",
                          image=image_bytes(row["image"]), answer=str(row["label"]), group=row["set"],
                          options=options[row["set"]]))
    return take_per_group(items, limit)


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score([ForgettingRow(item.group, item.answer, prediction, item.options)
                  for item, prediction in zip(items, predictions, strict=True)])


def headline(result: dict) -> dict[str, float]:
    return {"forgetting.meanAccuracy": result["meanAccuracy"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [[name, s["classes"], s["questions"], s["accuracy"] * 100] for name, s in result["sets"].items()]
    rows.append(["**mean**", "", result["questions"], result["meanAccuracy"] * 100])
    return ["set", "classes", "questions", "accuracy %"], rows


def bars(result: dict) -> dict[str, float]:
    return {name: s["accuracy"] for name, s in result["sets"].items()}
