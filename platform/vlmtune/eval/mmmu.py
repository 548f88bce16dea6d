"""MMMU (validation split): multiple-choice and open questions, parsed and scored as MMMU's own evaluation does.

Reference: MMMU-Benchmark/MMMU at bb0b95a945998d91dfef37e969e07d49d1139438, `mmmu/utils/eval_utils.py`
(`parse_multi_choice_response`, `parse_open_response`, `eval_multi_choice`, `eval_open`), `mmmu/utils/data_utils.py`
(prompts, the six disciplines) and `mmmu/configs/llava1.5.yaml` (LLaVA-1.5's prompt wording).

- Data layout: the MMMU/MMMU Hugging Face release, one folder per subject (`Accounting/`, `Art_Theory/`, ...)
  holding `dev-*`, `validation-*` and `test-*` Parquet files; only `validation-*` files are read (the test split
  has no answers). Columns: id (`validation_<Subject>_<n>`), question, options (a Python list literal), answer,
  question_type (`multiple-choice` or `open`), image_1 .. image_7. The URI is the release's root or one subject
  folder. Like LLaVA-1.5's MMMU run, the model sees `image_1` only.
- Answers are parsed by `mmmu_parse` (MMMU's rules, and what vlmtune does where nothing parses); `guessed` counts
  the multiple-choice answers that got a random letter. A missing prediction is wrong, never guessed.
- Accuracy per subject, per discipline and overall are over questions (MMMU's `calculate_ins_level_acc`).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.fs as pafs

from vlmtune import storage
from vlmtune.eval.items import Item, take_per_group
from vlmtune.eval.layouts import image_bytes, read_parquet_rows
from vlmtune.eval.mmmu_parse import is_right_open, parse_multiple_choice, parse_open

SPLIT = "validation"
DISCIPLINES: dict[str, tuple[str, ...]] = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": (
        "Basic_Medical_Science",
        "Clinical_Medicine",
        "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy",
        "Public_Health",
    ),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": (
        "Agriculture",
        "Architecture_and_Engineering",
        "Computer_Science",
        "Electronics",
        "Energy_and_Power",
        "Materials",
        "Mechanical_Engineering",
    ),
}
SUBJECTS = tuple(subject for subjects in DISCIPLINES.values() for subject in subjects)
MULTIPLE_CHOICE = "multiple-choice"
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


# ----------------------------------------------------------------------------------------- prompts and data


def prompt(question: str, options: Sequence[str]) -> str:
    """LLaVA-1.5's MMMU prompt: the question, `(A) option` lines for multiple choice, then the instruction.

    The YAML config's double-quoted scalars fold their blank lines into single newlines, and the option block
    ends with a newline of its own, so one blank line separates the options from the instruction.
    """
    if not options:
        return f"{question}\n{OPEN_INSTRUCTION}"
    block = "".join(f"({chr(ord('A') + index)}) {option}\n" for index, option in enumerate(options))
    return f"{question}\n{block}\n{MC_INSTRUCTION}"


def subject_of(question_id: str) -> str:
    """`validation_Art_Theory_12` -> `Art_Theory` (how MMMU's `main_eval_only.py` groups ids)."""
    return "_".join(question_id.split("_")[1:-1])


def _literal(text, field: str, question_id: str):
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"MMMU {question_id}: {field} {text[:60]!r} is not a Python literal") from None


def _gold(answer: str, question_id: str) -> str | list[str]:
    """A string answer, or a list of acceptable answers where the release writes one as a list literal."""
    text = str(answer).strip()
    if text.startswith("[") and text.endswith("]"):
        value = _literal(text, "answer", question_id)
        if isinstance(value, list):
            return [str(entry) for entry in value]
    return str(answer)


def _image(row: dict) -> bytes | None:
    for index in range(1, 8):
        data = image_bytes(row.get(f"image_{index}"))
        if data:
            return data
    return None


def _split_files(uri: str) -> list[str]:
    """The validation Parquet files of every subject folder under `uri` (or of `uri` itself), subjects in order."""
    fs, path = storage.resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such file or folder")
    folders = [uri] + [storage.join(uri, name) for name in storage.list_dir(uri) if name in SUBJECTS]
    files = [
        storage.join(folder, name)
        for folder in folders
        for name in storage.list_dir(folder)
        if name.startswith(f"{SPLIT}-") and name.endswith(".parquet")
    ]
    if not files:
        raise FileNotFoundError(
            f"{uri}: no {SPLIT}-*.parquet file here or in its subject folders (e.g. Art/); "
            "give the MMMU/MMMU release's root or one subject folder"
        )
    return files


def load(uri: str, limit: int | None = None) -> list[Item]:
    """MMMU validation questions; `limit` counts questions per subject."""
    items = []
    for file in _split_files(uri):
        for row in read_parquet_rows(file):
            qid = str(row["id"])
            options = [str(option) for option in _literal(row.get("options") or "[]", "options", qid)]
            multiple_choice = row["question_type"] == MULTIPLE_CHOICE
            if not multiple_choice:
                options = []
            items.append(
                Item(
                    question_id=qid,
                    question=row["question"],
                    prompt=prompt(row["question"], options),
                    image=_image(row),
                    answer=str(row["answer"]),
                    group=subject_of(qid),
                    options=tuple(options),
                    extra={"questionType": row["question_type"], "gold": _gold(row["answer"], qid)},
                )
            )
    return take_per_group(items, limit)


# ------------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class MMMURow:
    question_id: str
    subject: str
    gold: str | list[str]
    prediction: str | None
    options: tuple[str, ...]
    """Empty for open questions."""


def judge(row: MMMURow) -> tuple[bool, bool]:
    """(right, guessed) for one question."""
    if row.prediction is None:
        return False, False
    if row.options:
        letters = [chr(ord("A") + index) for index in range(len(row.options))]
        letter, guessed = parse_multiple_choice(
            row.prediction, letters, dict(zip(letters, row.options)), row.question_id
        )
        golds = row.gold if isinstance(row.gold, list) else [row.gold]
        return letter in golds, guessed
    return is_right_open(row.gold, parse_open(row.prediction)), False


def score(rows: Sequence[MMMURow]) -> dict:
    """Accuracy per subject, per discipline (over its subjects' questions) and overall."""
    subjects: dict[str, list[bool]] = {}
    guessed = 0
    for row in rows:
        right, guess = judge(row)
        subjects.setdefault(row.subject, []).append(right)
        guessed += guess
    per_subject = {
        name: {"accuracy": sum(right) / len(right), "questions": len(right)}
        for name, right in sorted(subjects.items(), key=lambda pair: _order(pair[0]))
    }
    disciplines = {}
    for discipline, names in DISCIPLINES.items():
        present = [per_subject[name] for name in names if name in per_subject]
        if present:
            count = sum(entry["questions"] for entry in present)
            disciplines[discipline] = {
                "accuracy": sum(e["accuracy"] * e["questions"] for e in present) / count,
                "questions": count,
            }
    total = len(rows)
    return {
        "accuracy": sum(sum(right) for right in subjects.values()) / total if total else 0.0,
        "questions": total,
        "guessed": guessed,
        "disciplines": disciplines,
        "subjects": per_subject,
    }


def _order(subject: str) -> int:
    return SUBJECTS.index(subject) if subject in SUBJECTS else len(SUBJECTS)


def score_items(items: Sequence[Item], predictions: Sequence[str | None]) -> dict:
    return score(
        [
            MMMURow(item.question_id, item.group, item.extra["gold"], prediction, item.options)
            for item, prediction in zip(items, predictions, strict=True)
        ]
    )


def chance(items: Sequence[Item]) -> dict[str, float]:
    """Expected accuracy of random letters on multiple-choice questions (open questions: 0)."""
    values = [1 / len(item.options) if item.options else 0.0 for item in items]
    return {"mmmu.accuracy": sum(values) / len(values)} if values else {}


def headline(result: dict) -> dict[str, float]:
    return {"mmmu.accuracy": result["accuracy"]}


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = []
    for discipline, entry in result["disciplines"].items():
        rows.append([f"**{discipline}**", entry["questions"], entry["accuracy"] * 100])
        rows += [
            [name, result["subjects"][name]["questions"], result["subjects"][name]["accuracy"] * 100]
            for name in DISCIPLINES[discipline]
            if name in result["subjects"]
        ]
    rows += [
        [name, s["questions"], s["accuracy"] * 100] for name, s in result["subjects"].items() if name not in SUBJECTS
    ]
    rows.append(["**overall**", result["questions"], result["accuracy"] * 100])
    return ["discipline / subject", "questions", "accuracy %"], rows


def bars(result: dict) -> dict[str, float]:
    return {discipline: entry["accuracy"] for discipline, entry in result["disciplines"].items()}
