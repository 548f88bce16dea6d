"""Catastrophic forgetting (the paper's CF): image classification sets asked of the model; CF is their mean accuracy.

VISION-FLAN reports CF as the classification accuracy averaged over its forgetting sets (MNIST, CIFAR-10,
CIFAR-100 and miniImageNet, following Zhai et al. 2023, "Investigating the Catastrophic Forgetting in Multimodal
Large Language Models"), each set weighing the same. vlmtune computes the same average over whatever sets the
data holds, and names them in the report.

Data layout (vlmtune's own; no standard exists): Parquet with columns `question_id`, `set` (the classification
set, e.g. mnist), `question` (the question stem), `image` (`{bytes, path}`) and `label` (the label name).
- A set with at most 26 classes is asked as multiple choice: its options are its distinct label names, sorted,
  and the answer is read with MMBench's letter rules (`choice.extract_option`).
- A larger set (CIFAR-100, miniImageNet) cannot be lettered: it is asked open-ended (LLaVA's short-answer
  instruction) and an answer is right when it contains the label as whole words (`_` read as a space,
  case-insensitive): "It is a maple tree." is right for `maple_tree`. EMT judged such open answers with
  GPT-3.5; this rule is stricter (synonyms count as wrong).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune.eval.choice import ANSWER_INSTRUCTION, LETTERS, extract_option, question_text
from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, read_parquet_rows

MAX_CLASSES = len(LETTERS)
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


def set_options(labels: Sequence[str]) -> tuple[str, ...]:
    """A set's options: its distinct label names, sorted (so the letters do not depend on file order); empty
    for a set with more classes than there are letters (asked open-ended)."""
    options = tuple(sorted(set(labels)))
    return options if len(options) <= MAX_CLASSES else ()


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower().replace("_", " ")).split()) + " "


def names_label(prediction: str | None, label: str) -> bool:
    """Whether an open answer names `label` as whole words."""
    return prediction is not None and _words(label) in _words(prediction)


@dataclass(frozen=True)
class ForgettingRow:
    set: str
    label: str
    prediction: str | None
    options: tuple[str, ...]
    """Empty: an open-ended set."""
    classes: int = 0
    """Classes in the set (the options' count for a lettered set)."""


def is_right(row: ForgettingRow) -> bool:
    if not row.options:
        return names_label(row.prediction, row.label)
    choice = extract_option(row.prediction, dict(zip(LETTERS, row.options)))
    return choice is not None and row.options[LETTERS.index(choice)] == row.label


def score(rows: Sequence[ForgettingRow]) -> dict:
    """Accuracy per set, and their mean (each set weighs the same however many examples it has)."""
    sets: dict[str, list[bool]] = {}
    classes: dict[str, tuple[int, bool]] = {}
    for row in rows:
        sets.setdefault(row.set, []).append(is_right(row))
        classes[row.set] = (len(row.options) or row.classes, not row.options)
    per_set = {
        name: {
            "accuracy": sum(right) / len(right),
            "questions": len(right),
            "classes": classes[name][0],
            "openEnded": classes[name][1],
        }
        for name, right in sorted(sets.items())
    }
    return {
        "meanAccuracy": sum(s["accuracy"] for s in per_set.values()) / len(per_set) if per_set else 0.0,
        "questions": len(rows),
        "sets": per_set,
    }


def load(uri: str, limit: int | None = None) -> list[Item]:
    """Forgetting-suite questions; `limit` counts examples per set (options come from the whole set)."""
    rows = read_parquet_rows(uri)
    labels = {
        name: {str(row["label"]) for row in rows if row["set"] == name}
        for name in dict.fromkeys(row["set"] for row in rows)
    }
    items = []
    for row in rows:
        options = set_options(labels[row["set"]])
        if options:
            text = question_text(row["question"], options)
            prompt = f"{text}\n{ANSWER_INSTRUCTION}"
        else:
            text, prompt = row["question"], f"{row['question']}\n{OPEN_INSTRUCTION}"
        items.append(
            Item(
                question_id=str(row["question_id"]),
                question=text,
                prompt=prompt,
                image=image_bytes(row["image"]),
                answer=str(row["label"]),
                group=row["set"],
                options=options,
                extra={"classes": len(labels[row["set"]])},
            )
        )
    return take_per_group(items, limit)


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [
            ForgettingRow(item.group, item.answer, prediction, item.options, item.extra.get("classes", 0))
            for item, prediction in zip(items, predictions, strict=True)
        ]
    )


def chance(items: Sequence[Item]) -> dict[str, float]:
    """CF of random letters: the mean over lettered sets of 1 / classes (open-ended sets: 0)."""
    per_set = {item.group: (1 / len(item.options) if item.options else 0.0) for item in items}
    return {"forgetting.meanAccuracy": sum(per_set.values()) / len(per_set)} if per_set else {}


def headline(result: dict) -> dict[str, float]:
    return {"forgetting.meanAccuracy": result["meanAccuracy"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [name, s["classes"], "open" if s.get("openEnded") else "letters", s["questions"], s["accuracy"] * 100]
        for name, s in result["sets"].items()
    ]
    rows.append(["**CF (mean of sets)**", "", "", result["questions"], result["meanAccuracy"] * 100])
    return ["set", "classes", "asked as", "questions", "accuracy %"], rows


def bars(result: dict) -> dict[str, float]:
    return {name: s["accuracy"] for name, s in result["sets"].items()}
