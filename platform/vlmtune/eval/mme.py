"""MME: 14 yes/no subtasks, two questions per image, scored as the official MME eval tool does.

Official tool: `eval_tool/calculation.py` of the MME release (BradyFU/Awesome-Multimodal-Large-Language-Models,
Evaluation branch). Data layout: lmms-lab/MME Parquet (question_id, image, question, answer, category), where
`question_id` is the image's path (e.g. `code_reasoning/0020.png`) and so is shared by its two questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, read_parquet_rows

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
# LLaVA-1.5's MME prompt (llava_mme.jsonl): the released question plus its short-answer instruction.
PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."


@dataclass(frozen=True)
class MMERow:
    category: str
    image: str
    answer: str
    prediction: str | None


def parse_answer(prediction: str | None) -> str:
    """'yes', 'no' or 'other', as the official tool reads an answer.

    Lowercased (and stripped, as LLaVA's answer files are): exactly yes/no, else 'yes' within the first
    four characters, else 'no' within them ('not', 'none' count as no), else other, which is always wrong.
    """
    text = (prediction or "").lower().strip()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def score(rows: Sequence[MMERow]) -> dict:
    """Per-subtask acc, acc+ and score; perception and cognition totals.

    acc is over questions, acc+ over images (every question of the image right); a subtask's score is
    acc x 100 + acc+ x 100 (max 200), perception sums its 10 subtasks (max 2000), cognition its 4 (max 800).
    Subtasks absent from the data are left out of the sums and listed.
    """
    by_task: dict[str, dict[str, list[bool]]] = {}
    other: dict[str, int] = {}
    for row in rows:
        answer = row.answer.lower().strip()
        if answer not in ("yes", "no"):
            raise ValueError(f"MME answers are yes/no; {row.category}/{row.image} has {row.answer!r}")
        parsed = parse_answer(row.prediction)
        by_task.setdefault(row.category, {}).setdefault(row.image, []).append(parsed == answer)
        other[row.category] = other.get(row.category, 0) + (parsed == "other")
    unknown = sorted(set(by_task) - set(PERCEPTION) - set(COGNITION))
    if unknown:
        raise ValueError(f"unknown MME categories {unknown}; expected {PERCEPTION + COGNITION}")
    subtasks = {}
    for task in PERCEPTION + COGNITION:
        if task not in by_task:
            continue
        images = by_task[task].values()
        questions = [right for image in images for right in image]
        acc = sum(questions) / len(questions)
        acc_plus = sum(all(image) for image in images) / len(images)
        subtasks[task] = {
            "acc": acc,
            "accPlus": acc_plus,
            "score": acc * 100 + acc_plus * 100,
            "questions": len(questions),
            "images": len(images),
            "other": other[task],
        }
    perception = sum(subtasks[task]["score"] for task in PERCEPTION if task in subtasks)
    cognition = sum(subtasks[task]["score"] for task in COGNITION if task in subtasks)
    return {
        "perception": perception,
        "cognition": cognition,
        "total": perception + cognition,
        "subtasks": subtasks,
        "absentSubtasks": [task for task in PERCEPTION + COGNITION if task not in subtasks],
        "questions": len(rows),
    }


def load(uri: str, limit: int | None = None) -> list[Item]:
    """MME questions from lmms-lab/MME Parquet; `limit` counts images per subtask."""
    items = [
        Item(
            question_id=str(row["question_id"]),
            question=row["question"],
            prompt=row["question"] + PROMPT_SUFFIX,
            image=image_bytes(row["image"]),
            answer=row["answer"],
            group=row["category"],
        )
        for row in read_parquet_rows(uri)
    ]
    return take_per_group(items, limit)


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [
            MMERow(item.group, item.question_id, item.answer, prediction)
            for item, prediction in zip(items, predictions, strict=True)
        ]
    )


def chance(items: Sequence[Item]) -> dict[str, float]:
    """Scores of random yes/no answers: acc 50 + acc+ 25 for every subtask present."""
    present = {item.group for item in items}
    return {
        "mme.perception": 75.0 * len(present & set(PERCEPTION)),
        "mme.cognition": 75.0 * len(present & set(COGNITION)),
    }


def headline(result: dict) -> dict[str, float]:
    return {"mme.perception": result["perception"], "mme.cognition": result["cognition"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [task, sub["questions"], sub["images"], sub["acc"] * 100, sub["accPlus"] * 100, sub["score"]]
        for task, sub in result["subtasks"].items()
    ]
    rows += [
        ["**perception**", "", "", "", "", result["perception"]],
        ["**cognition**", "", "", "", "", result["cognition"]],
    ]
    return ["subtask", "questions", "images", "acc %", "acc+ %", "score"], rows


def bars(result: dict) -> dict[str, float]:
    return {task: sub["score"] for task, sub in result["subtasks"].items()}
