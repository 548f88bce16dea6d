"""Judge reviews on disk: every judged answer with the judge's raw replies, and the published review formats.

vlmtune writes `reviews/<benchmark>.jsonl` (one line per question: id, question, prediction, every raw reply in
the order asked, and what was read from them). `vlmtune eval score --reviews` reads that file back, or the files
the reference scripts write: LLaVA's `eval_gpt_review_bench.py` JSON lines ({question_id, content, ...}) and
MM-Vet's grade file ({id: {"content": [...], "score": [...]}}; the first run's reply).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from vlmtune.eval import llavabench, mmvet
from vlmtune.eval.items import Item, PredictionsError


def review_records(
    name: str, items: Sequence[Item], predictions: Sequence[str | None], reviews: Sequence[Sequence[str]]
) -> list[dict]:
    """The reviews file's records for a judged benchmark."""
    records = []
    for item, prediction, replies in zip(items, predictions, reviews, strict=True):
        record = {
            "question_id": item.question_id,
            "question": item.question,
            "prediction": prediction,
            "replies": list(replies),
        }
        if name == "llavabench":
            scores = llavabench.parse_score(replies[-1] if replies else None)
            record.update(category=item.group, scores=list(scores) if scores else None)
        else:
            grade, status = mmvet.grade_of(prediction, replies)
            record.update(capabilities=item.extra["capabilities"], grade=grade, status=status)
        records.append(record)
    return records


def read_reviews(data: bytes, source: str, items: Sequence[Item]) -> list[list[str]]:
    """Each item's judge replies from a reviews file in any of the three formats ([] where it has none).

    Raises:
        PredictionsError: a file that is none of them, or one reviewing a question twice.
    """
    text = data.decode("utf-8", errors="strict")
    by_id = _mm_vet_grades(text, source)
    if by_id is None:
        by_id = _jsonl_reviews(text, source)
    return [list(by_id.get(item.question_id, [])) for item in items]


def _mm_vet_grades(text: str, source: str) -> dict[str, list[str]] | None:
    try:
        whole = json.loads(text)
    except ValueError:
        return None
    if not isinstance(whole, dict) or "question_id" in whole:
        return None
    replies = {}
    for qid, entry in whole.items():
        content = entry.get("content") if isinstance(entry, dict) else None
        if not isinstance(content, list) or not content or not isinstance(content[0], str):
            raise PredictionsError(f"{source}: entry {qid!r} has no `content` list of replies (MM-Vet grade file)")
        replies[str(qid)] = [content[0]]
    return replies


def _jsonl_reviews(text: str, source: str) -> dict[str, list[str]]:
    replies: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PredictionsError(f"{source} line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict) or "question_id" not in record:
            raise PredictionsError(f"{source} line {number}: expected a review with question_id")
        qid = str(record["question_id"])
        if qid in lines:
            raise PredictionsError(
                f"{source} line {number}: a second review of question_id {qid!r} (the first is on line {lines[qid]})"
            )
        lines[qid] = number
        found = record.get("replies", [record["content"]] if "content" in record else None)
        if not isinstance(found, list) or not all(isinstance(reply, str) for reply in found):
            raise PredictionsError(
                f"{source} line {number} (question_id {qid!r}): expected `replies` (a list of "
                "strings) or LLaVA's `content` (a string)"
            )
        replies[qid] = found
    return replies
