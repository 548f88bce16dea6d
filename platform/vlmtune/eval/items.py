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
class Alignment:
    """Predictions lined up with the items; None where a prediction is missing (scored as wrong)."""

    predictions: list[str | None]
    missing: int
    unused: int


def align(items: Sequence[Item], predictions: Iterable[dict]) -> Alignment:
    """Match prediction records `{"question_id", "question", "prediction"}` to `items`.

    A question id that is unique in the data matches on its own; one the data reuses (MME's two
    questions per image) matches on the id together with the question text (whitespace-trimmed).
    Ids are compared as strings, so `12` and `"12"` are the same question.
    """
    shared = {qid for qid, count in Counter(item.question_id for item in items).items() if count > 1}
    by_key: dict[tuple[str, str], str] = {}
    for record in predictions:
        qid = str(record["question_id"])
        text = str(record.get("question") or "").strip() if qid in shared else ""
        by_key.setdefault((qid, text), str(record.get("prediction") or ""))
    aligned, used = [], set()
    for item in items:
        key = (item.question_id, item.question.strip() if item.question_id in shared else "")
        aligned.append(by_key.get(key))
        used.add(key)
    missing = sum(prediction is None for prediction in aligned)
    return Alignment(aligned, missing, len(set(by_key) - used))


def prediction_records(items: Sequence[Item], predictions: Sequence[str]) -> list[dict]:
    """The JSON-lines records written for `items` (what `vlmtune eval score` reads back)."""
    return [{"question_id": item.question_id, "question": item.question, "prediction": prediction}
            for item, prediction in zip(items, predictions, strict=True)]


def dumps_jsonl(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")


def loads_jsonl(data: bytes) -> list[dict]:
    """Records of a JSON-lines file; blank lines are skipped, a bad line raises naming its number."""
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict) or "question_id" not in record or "prediction" not in record:
            raise ValueError(f"line {number}: expected an object with question_id and prediction")
        records.append(record)
    return records


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
