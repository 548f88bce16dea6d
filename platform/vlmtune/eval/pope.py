"""POPE: object-hallucination yes/no questions in three splits, scored as LLaVA's `llava/eval/eval_pope.py`.

Data layout: lmms-lab/POPE Parquet (id, question_id, question, answer, image_source, image, category), where
`category` is the split (random, popular, adversarial) and `answer` is yes/no. Give the split folder itself
(`.../data`, or `.../Full` for the full per-split release), not the repository root that holds both.

A question without a prediction counts as wrong (a "no" on a yes question, a "yes" on a no question), never as
eval_pope.py's default "yes": an empty predictions file scores F1 0, not 0.667. An answer that is present but
empty is read as eval_pope.py reads it (yes); the report shows each arm's empty-answer rate beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, read_parquet_rows

SPLITS = ("random", "popular", "adversarial")
MISSING = "missing"
"""What `score` reads for a question that has no prediction: wrong whatever the label."""
PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."  # LLaVA-1.5's llava_pope_test.jsonl


@dataclass(frozen=True)
class POPERow:
    split: str
    answer: str
    prediction: str | None


def parse_answer(prediction: str | None) -> str:
    """'yes' or 'no' as eval_pope.py reads it: only the first sentence (up to the first '.'), commas removed,
    split on spaces; a word 'No', 'not' or 'no' makes it no, anything else (even empty) yes."""
    text = prediction or ""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if "No" in words or "not" in words or "no" in words else "yes"


def metrics(answers: Sequence[str], predictions: Sequence[str]) -> dict:
    """Accuracy, precision, recall, F1 ('yes' is positive) and the share of 'yes' predictions.

    Same arithmetic as eval_pope.py; where it would divide by zero (no 'yes' predicted, or no 'yes' in the
    labels) the value is 0.0 instead of an exception.
    """
    tp = fp = tn = fn = 0
    for answer, prediction in zip(answers, predictions, strict=True):
        positive_label = answer.lower().strip() != "no"  # eval_pope.py: anything but 'no' is a yes label
        said_yes = (not positive_label) if prediction == MISSING else prediction == "yes"  # missing: wrong
        if said_yes:
            tp, fp = tp + positive_label, fp + (not positive_label)
        else:
            tn, fn = tn + (not positive_label), fn + positive_label
    precision = float(tp) / float(tp + fp) if tp + fp else 0.0
    recall = float(tp) / float(tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = tp + tn + fp + fn
    return {
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yesRatio": list(predictions).count("yes") / total if total else 0.0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "questions": total,
    }


def score(rows: Sequence[POPERow]) -> dict:
    """Metrics per split (as LLaVA reports them), over all questions pooled, and F1 averaged over the splits
    (the single POPE figure in the LLaVA-1.5 paper; the `pope.f1` headline). The pooled F1 over every question
    (`overall`) differs from that mean whenever the splits differ; the table shows both, named."""
    parsed = [MISSING if row.prediction is None else parse_answer(row.prediction) for row in rows]
    present = [split for split in SPLITS if any(row.split == split for row in rows)]
    present += sorted({row.split for row in rows} - set(SPLITS))
    splits = {}
    for split in present:
        chosen = [(row.answer, prediction) for row, prediction in zip(rows, parsed) if row.split == split]
        splits[split] = metrics([a for a, _ in chosen], [p for _, p in chosen])
    overall = metrics([row.answer for row in rows], parsed)
    mean_f1 = sum(split["f1"] for split in splits.values()) / len(splits) if splits else 0.0
    return {"splits": splits, "overall": overall, "meanF1": mean_f1}


def load(uri: str, limit: int | None = None) -> list[Item]:
    """POPE questions from lmms-lab/POPE Parquet; `limit` counts questions per split.

    Items are keyed on `question_id` when it is unique in the file, else on the `id` column (unique across the
    three splits), since the same image and question can recur in several splits; predictions must carry the
    question text as well (`Benchmark.match_text`).
    """
    rows = read_parquet_rows(uri)
    key = "question_id" if len({str(row["question_id"]) for row in rows}) == len(rows) else "id"
    items = []
    for row in rows:
        extra = {"image_source": row["image_source"]} if row.get("image_source") else {}
        items.append(
            Item(
                question_id=str(row[key]),
                question=row["question"],
                prompt=row["question"] + PROMPT_SUFFIX,
                image=image_bytes(row["image"]),
                answer=row["answer"],
                group=row["category"],
                extra=extra,
            )
        )
    return take_per_group(items, limit)


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [POPERow(item.group, item.answer, prediction) for item, prediction in zip(items, predictions, strict=True)]
    )


def chance(items: Sequence[Item]) -> dict[str, float]:
    """The best figures answers that ignore the image reach: random answers at the most favourable yes-rate.

    For a split with a share p of yes labels, random answers at yes-rate r have precision p and recall r, so F1
    2pr/(p+r) grows with r up to "yes" to everything: 2p/(p+1) (66.7% on balanced splits, not the coin's 50%; a
    model that says yes to most questions beats the coin on F1 without looking). Accuracy is at best max(p, 1-p).
    The unbiased yes-ratio stays 0.5.
    """
    splits: dict[str, list[bool]] = {}
    for item in items:
        splits.setdefault(item.group, []).append(item.answer.lower().strip() != "no")
    if not splits:
        return {}
    shares = [sum(labels) / len(labels) for labels in splits.values()]
    f1 = sum(2 * p / (p + 1) for p in shares) / len(shares)
    labels = [label for split in splits.values() for label in split]
    yes = sum(labels) / len(labels)
    return {"pope.f1": f1, "pope.accuracy": max(yes, 1 - yes), "pope.yesRatio": 0.5}


def headline(result: dict) -> dict[str, float]:
    return {
        "pope.f1": result["meanF1"],
        "pope.accuracy": result["overall"]["accuracy"],
        "pope.yesRatio": result["overall"]["yesRatio"],
    }


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [
            name,
            m["questions"],
            m["accuracy"] * 100,
            m["precision"] * 100,
            m["recall"] * 100,
            m["f1"] * 100,
            m["yesRatio"] * 100,
        ]
        for name, m in [*result["splits"].items(), ("**pooled**", result["overall"])]
    ]
    rows.append(["**mean of splits** (headline pope.f1)", "", "", "", "", result["meanF1"] * 100, ""])
    return ["split", "questions", "accuracy %", "precision %", "recall %", "F1 %", "yes %"], rows


def bars(result: dict) -> dict[str, dict[str, float]]:
    return {
        name: {"accuracy": m["accuracy"], "F1": m["f1"], "yes ratio": m["yesRatio"]}
        for name, m in result["splits"].items()
    }
