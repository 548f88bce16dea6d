"""What every benchmark reader produces and every scorer consumes: questions, and predictions matched to them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One question put to the model."""

    question_id: str
    """As in the data; MME gives both questions of an image the image's id."""
    question: str
    """The question as the data states it; predictions carry it to disambiguate shared question ids."""
    prompt: str
    """The user turn sent to the model (the image goes in front of it)."""
    image: bytes | None
    """Encoded image (PNG/JPEG bytes)."""
    answer: str
    """Ground truth: yes/no, an option letter, a label, or free text."""
    group: str
    """MME subtask, POPE split, MMBench category, held-out task or forgetting set."""
    options: tuple[str, ...] = ()
    """Option texts in letter order (A, B, ...), for multiple-choice items."""
    source_id: str = ""
    """MMBench: the question every rotation comes from (CircularEval scores them together)."""
    extra: dict = field(default_factory=dict, compare=False)
    """Reader-specific fields kept for reports (e.g. POPE's image_source)."""


@dataclass(frozen=True)
class Question:
    prompt: str
    """User turn without the image token; the image is put in front, as LLaVA-1.5 does."""
    image: bytes | None
    """Encoded image; None for a text-only question (a judge's review prompt)."""
    system: str | None = None
    """System prompt of the template; None: vicuna_v1's own."""
    max_new_tokens: int | None = None
    """Longest answer; None: the caller's default."""
    temperature: float = 0.0
    """0: greedy; above 0: sampled at that temperature (seeded, so a rerun samples the same)."""

    @property
    def settings(self) -> tuple:
        """What must be equal for questions to share one generate() call."""
        return self.image is None, self.system, self.max_new_tokens, self.temperature


@dataclass(frozen=True)
class Prediction:
    """One answer read from a predictions file (or handed over by the runner)."""

    question_id: str
    question: str | None
    """The question text, when the record carries it; needed where ids repeat (MME) and for POPE."""
    text: str
    line: int
    """1-based line (or record) number, for error messages."""


@dataclass(frozen=True)
class Alignment:
    """Predictions lined up with the items; None where a prediction is missing (scored as wrong)."""

    predictions: list[str | None]
    missing: int
    unused: int


class PredictionsError(ValueError):
    """A predictions file that cannot be scored: one line naming the file, the line and the question id."""


def _key(question_id: str, question: str | None, with_text: bool) -> tuple[str, str]:
    return question_id, (question or "").strip() if with_text else ""


def align(
    items: Sequence[Item],
    predictions: Iterable[Prediction | dict],
    source: str = "predictions",
    match_text: bool = False,
) -> Alignment:
    """Match predictions to `items` by question id, and by question text too where the id alone is ambiguous.

    A question id that is unique in the data matches on its own; one the data reuses (MME's two questions per
    image), or every id when `match_text` is set (POPE, where the same image and question recur across splits),
    matches on the id together with the question text (whitespace-trimmed). Ids compare as strings, so `12` and
    `"12"` are the same question.

    Raises:
        PredictionsError: two predictions for one question (naming both lines), or a record of the wrong type.
    """
    shared = {qid for qid, count in Counter(item.question_id for item in items).items() if count > 1}
    by_key: dict[tuple[str, str], Prediction] = {}
    for prediction in parse_predictions(predictions, source):
        key = _key(prediction.question_id, prediction.question, match_text or prediction.question_id in shared)
        first = by_key.setdefault(key, prediction)
        if first is not prediction:
            raise PredictionsError(
                f"{source} line {prediction.line}: a second prediction for question_id "
                f"{prediction.question_id!r} (the first is on line {first.line}); "
                "keep one answer per question"
            )
    aligned, used = [], set()
    for item in items:
        key = _key(item.question_id, item.question, match_text or item.question_id in shared)
        found = by_key.get(key)
        aligned.append(None if found is None else found.text)
        used.add(key)
    missing = sum(prediction is None for prediction in aligned)
    return Alignment(aligned, missing, len(set(by_key) - used))


def parse_predictions(records: Iterable[Prediction | dict], source: str = "predictions") -> list[Prediction]:
    """Prediction records `{"question_id", "question"?, "prediction"}` checked and typed.

    LLaVA's answer files (`model_vqa*.py`) name the answer `text` and carry the question in `prompt`; both are read.

    Raises:
        PredictionsError: a question id that is not a string or an integer, or an answer that is not a string.
    """
    parsed = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, Prediction):
            parsed.append(record)
            continue
        line = record.get("_line", number)
        qid = record.get("question_id")
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise PredictionsError(
                f"{source} line {line}: question_id must be a string or an integer, not {_preview(qid)}"
            )
        field = "prediction" if "prediction" in record else "text"
        text = record.get(field)
        if not isinstance(text, str):
            raise PredictionsError(
                f"{source} line {line} (question_id {str(qid)!r}): {field} must be a string, "
                f'not {_preview(text)}; write an unanswered question as ""'
            )
        parsed.append(Prediction(str(qid), _question_text(record), text, line))
    return parsed


def _question_text(record: dict) -> str | None:
    """The record's question: `question`, or the first line of a LLaVA answer file's `prompt` (the question, then
    LLaVA's answer-format instruction on the next line)."""
    question = record.get("question")
    if isinstance(question, str):
        return question
    prompt = record.get("prompt")
    return prompt.split("\n")[0] if isinstance(prompt, str) else None


def _preview(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def item_record(item: Item) -> dict:
    """An item as JSON, without its image (what the comparison report needs to re-score resamples)."""
    return {
        "question_id": item.question_id,
        "question": item.question,
        "answer": item.answer,
        "group": item.group,
        "options": list(item.options),
        "source_id": item.source_id,
        "extra": item.extra,
    }


def item_from_record(record: dict) -> Item:
    return Item(
        question_id=record["question_id"],
        question=record["question"],
        prompt="",
        image=None,
        answer=record["answer"],
        group=record["group"],
        options=tuple(record.get("options") or ()),
        source_id=record.get("source_id", ""),
        extra=dict(record.get("extra") or {}),
    )


def prediction_records(items: Sequence[Item], predictions: Sequence[str]) -> list[dict]:
    """The JSON-lines records written for `items` (what `vlmtune eval score` reads back)."""
    return [
        {"question_id": item.question_id, "question": item.question, "prediction": prediction}
        for item, prediction in zip(items, predictions, strict=True)
    ]


def dumps_jsonl(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")


def loads_jsonl(data: bytes, source: str = "predictions") -> list[dict]:
    """Prediction records of a file, each with its line number under `_line`.

    JSON lines (blank lines skipped), or one JSON object mapping question id to answer (the MM-Vet and MMMU
    result files).

    Raises:
        PredictionsError: a line that is not JSON, or a record without question_id and prediction (or text).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PredictionsError(f"{source}: not UTF-8 text (byte {err.start})") from None
    whole = _json_object(text)
    if whole is not None:
        return [
            {"question_id": qid, "prediction": answer, "_line": number}
            for number, (qid, answer) in enumerate(whole.items(), start=1)
        ]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PredictionsError(f"{source} line {number}: not JSON ({err.msg})") from None
        if (
            not isinstance(record, dict)
            or "question_id" not in record
            or not ("prediction" in record or "text" in record)
        ):
            raise PredictionsError(f"{source} line {number}: expected an object with question_id and prediction")
        records.append({**record, "_line": number})
    return records


def _json_object(text: str) -> dict | None:
    """The file as one JSON object of answers ({"v1_0": "answer", ...}), or None when it is something else."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and "question_id" not in value:
        return value
    return None


def take_per_group(items: Sequence[Item], limit: int | None, unit=lambda item: item.question_id) -> list[Item]:
    """The items of the first `limit` units (`unit(item)`) of every group, in file order.

    A unit keeps its items together: MME counts images, so both questions of an image stay in.
    """
    if limit is None:
        return list(items)
    units: dict[str, set] = {}
    kept = []
    for item in items:
        seen = units.setdefault(item.group, set())
        key = unit(item)
        if key not in seen:
            if len(seen) >= limit:
                continue
            seen.add(key)
        kept.append(item)
    return kept
