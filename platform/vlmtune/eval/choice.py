"""Multiple choice, MMBench-style: option letters extracted by rules, CircularEval over option rotations.

- Letter extraction follows VLMEvalKit's `can_infer` (the rules MMBench applies before its LLM judge), as of
  open-compass/VLMEvalKit commit 2cf2a36c6e79b51faf676a7011b3a0f5b579814d (vlmeval/utils/matching_util.py, the
  newest change to it in the repository snapshot read at e8e78f05f3080fe28154f2130321f17951c3be94); see
  `extract_option`. No LLM judge runs here (VLMEvalKit's `exact_matching` policy), so answers the rules cannot
  read count as wrong.
- CircularEval (MMBench): a question with N options is asked N times, the options rotated one step each time
  (LLaVA's `model_vqa_mmbench.py --all-rounds`); it counts as right only if every rotation is answered right.
- Data layout: the MMBench TSV (index, question, hint, A, B, C, D, answer, category, image as base64, ...).
  Rotation r of question `index` gets question_id `index + r * 1_000_000`, the numbering of MMBench's
  circular TSVs; a TSV that already holds such copies is scored as given instead of rotated again.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, is_missing, read_tsv_rows

CIRCULAR_STRIDE = 1_000_000
LETTERS = string.ascii_uppercase
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
_PUNCTUATION = ".()[],:;!*#{}"
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_API_FAILURE = "Failed to obtain answer via API"
# "The answer is B", "correct answer is **C**": case-insensitive, and with no word boundary after the letter,
# as upstream, so "the answer is blue" reads as B.
_ANSWER_IS = re.compile(r"answer\s+is\s+\**([A-D])", re.IGNORECASE)
_LAST_WORDS = 4


def extract_option(prediction: str | None, choices: Mapping[str, str]) -> str | None:
    """The chosen letter, or None when the rules cannot tell (or the answer declines every option).

    VLMEvalKit's `can_infer`, in order:
    1. `can_infer_option` (skipped when the answer reports an API failure): a refusal phrase declines (its 'Z');
       punctuation `.()[],:;!*#{}` becomes spaces; when exactly one choice letter stands alone as a word it is the
       answer, but only if it first appears among the last four words; no letter and a standalone 'Z' declines;
       otherwise "answer is X" (any case, A-D) names X.
    2. `can_infer_text`: unless the answer is longer than twice the options' total length, the one option whose
       text (case-insensitive) the answer contains.
    Where vlmtune departs: an answer that is a single lowercase letter of a choice (`c`, `d.`) counts as that
    letter. Uncased tokenizers (the tiny preset's) write every letter in lower case; VLMEvalKit would hand such
    an answer to its LLM judge, which is not run here.

    Args:
        prediction: the model's answer (None: no prediction, never right).
        choices: letter -> option text, e.g. {"A": "red", "B": "blue"}.
    """
    text = "" if prediction is None else str(prediction)
    words = _words(text)
    if _API_FAILURE not in text:
        if any(refusal in text for refusal in _REFUSALS):
            return None
        named = [letter for letter in choices if letter in words]
        if len(named) == 1 and words.index(named[0]) > len(words) - 1 - _LAST_WORDS:
            return named[0]
        if not named and "Z" in words:  # "none of these": never matched to an option's text
            return None
        said = _ANSWER_IS.search(text)
        if said and said.group(1).upper() in choices:
            return said.group(1).upper()
    by_text = _option_by_text(text, choices)
    if by_text is not None:
        return by_text
    if len(words) == 1 and len(words[0]) == 1 and words[0].upper() in choices:  # vlmtune's departure
        return words[0].upper()
    return None


def _words(text: str) -> list[str]:
    for char in _PUNCTUATION:
        text = text.replace(char, " ")
    return text.split()


def _option_by_text(text: str, choices: Mapping[str, str]) -> str | None:
    lower = text.lower()
    if len(lower) > 2 * sum(len(str(option)) for option in choices.values()):
        return None
    contained = [letter for letter, option in choices.items() if str(option).lower() in lower]
    return contained[0] if len(contained) == 1 else None


def option_block(options: Sequence[str]) -> str:
    return "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options))


def question_text(question: str, options: Sequence[str], hint: str | None = None) -> str:
    """LLaVA's MMBench question: hint, question, then one `A. option` line per option."""
    stem = f"{hint}\n{question}" if hint else question
    return f"{stem}\n{option_block(options)}"


def rotate(options: Sequence[str], answer: str, steps: int) -> tuple[tuple[str, ...], str]:
    """Options shifted `steps` to the left and the letter the right answer moved to."""
    n = len(options)
    rotated = tuple(options[steps:]) + tuple(options[:steps])
    return rotated, LETTERS[(LETTERS.index(answer) - steps) % n]


def circular_items(
    index: int, question: str, hint: str | None, options: Sequence[str], answer: str, group: str, image: bytes | None
) -> list[Item]:
    """The N rotations of one N-option question, rotation 0 being the question as published."""
    items = []
    for step in range(len(options)):
        rotated, letter = rotate(options, answer, step)
        text = question_text(question, rotated, hint)
        items.append(
            Item(
                question_id=str(index + step * CIRCULAR_STRIDE),
                question=text,
                prompt=f"{text}\n{ANSWER_INSTRUCTION}",
                image=image,
                answer=letter,
                group=group,
                options=rotated,
                source_id=str(index),
                extra={"rotation": step},
            )
        )
    return items


@dataclass(frozen=True)
class ChoiceRow:
    source_id: str
    group: str
    answer: str
    prediction: str | None
    options: tuple[str, ...]
    rotation: int = 0


@functools.lru_cache(maxsize=1 << 16)  # a bootstrap re-scores the same answers a thousand times
def is_right(answer: str, prediction: str | None, options: tuple[str, ...]) -> bool:
    return extract_option(prediction, dict(zip(LETTERS, options))) == answer


def score(rows: Sequence[ChoiceRow]) -> dict:
    """CircularEval accuracy (every rotation right) and single-pass accuracy (rotation 0 only), overall and per
    category; both are over source questions."""
    by_source: dict[str, list[ChoiceRow]] = {}
    for row in rows:
        by_source.setdefault(row.source_id, []).append(row)
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for source_rows in by_source.values():
        right = [is_right(row.answer, row.prediction, tuple(row.options)) for row in source_rows]
        first = [r for row, r in zip(source_rows, right) if row.rotation == 0]
        groups.setdefault(source_rows[0].group, []).append((all(right), bool(first and first[0])))
    outcomes = [outcome for values in groups.values() for outcome in values]

    def summary(values: list[tuple[bool, bool]]) -> dict:
        n = len(values)
        return {
            "circularAccuracy": sum(c for c, _ in values) / n if n else 0.0,
            "singleAccuracy": sum(s for _, s in values) / n if n else 0.0,
            "questions": n,
        }

    return {
        **summary(outcomes),
        "askedQuestions": len(rows),
        "categories": {group: summary(values) for group, values in sorted(groups.items())},
    }


def load(uri: str, limit: int | None = None) -> list[Item]:
    """MMBench TSV rows as circular items; `limit` counts source questions per category."""
    rows = read_tsv_rows(uri)
    if rows and "answer" not in rows[0]:
        raise ValueError(f"{uri}: no `answer` column (a test split?); only splits with answers can be scored")
    pre_rotated = any(int(row["index"]) >= CIRCULAR_STRIDE for row in rows)
    items = []
    for row in rows:
        index = int(row["index"])
        options = _options(row)
        hint = None if is_missing(row.get("hint")) else row["hint"]
        image = image_bytes(row.get("image"))
        group = row.get("category") or "all"
        if pre_rotated:
            text = question_text(row["question"], options, hint)
            items.append(
                Item(
                    str(index),
                    text,
                    f"{text}\n{ANSWER_INSTRUCTION}",
                    image,
                    row["answer"],
                    group,
                    tuple(options),
                    str(index % CIRCULAR_STRIDE),
                    {"rotation": index // CIRCULAR_STRIDE},
                )
            )
        else:
            items.extend(circular_items(index, row["question"], hint, options, row["answer"], group, image))
    return take_per_group(items, limit, unit=lambda item: item.source_id)


def _options(row: dict) -> list[str]:
    """Option texts from columns A, B, ... up to the first empty one (LLaVA's `get_options`)."""
    options = []
    for letter in LETTERS:
        if letter not in row or is_missing(row[letter]):
            break
        options.append(row[letter])
    return options


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [
            ChoiceRow(item.source_id, item.group, item.answer, prediction, item.options, item.extra["rotation"])
            for item, prediction in zip(items, predictions, strict=True)
        ]
    )


def chance(items: Sequence[Item]) -> dict[str, float]:
    """Accuracy of random letters: 1/k per k-option question, and (1/k)^k for all k rotations right."""
    options = {item.source_id: len(item.options) for item in items if item.options}
    if not options:
        return {}
    return {
        "mc.singleAccuracy": sum(1 / k for k in options.values()) / len(options),
        "mc.circularAccuracy": sum((1 / k) ** k for k in options.values()) / len(options),
    }


def headline(result: dict) -> dict[str, float]:
    return {"mc.circularAccuracy": result["circularAccuracy"], "mc.singleAccuracy": result["singleAccuracy"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [
        [name, c["questions"], c["circularAccuracy"] * 100, c["singleAccuracy"] * 100]
        for name, c in result["categories"].items()
    ]
    rows.append(["**all**", result["questions"], result["circularAccuracy"] * 100, result["singleAccuracy"] * 100])
    return ["category", "questions", "circular %", "single pass %"], rows


def bars(result: dict) -> dict[str, dict[str, float]]:
    return {
        name: {"circular": c["circularAccuracy"], "single pass": c["singleAccuracy"]}
        for name, c in result["categories"].items()
    }
