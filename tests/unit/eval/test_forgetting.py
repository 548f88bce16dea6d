"""Forgetting suite: classification sets as multiple choice over label names; accuracy per set."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlmtune.eval import forgetting
from vlmtune.eval.forgetting import ForgettingRow, score, set_options
from vlmtune.eval.layouts import IMAGE_STRUCT, parquet_bytes


def test_options_are_the_sorted_distinct_labels():
    assert set_options(["cat", "ant", "cat", "bee"]) == ("ant", "bee", "cat")
    with pytest.raises(ValueError, match="27 classes"):
        set_options([str(n) for n in range(27)])


def test_accuracy_per_set_and_mean_over_sets():
    digits = tuple(str(d) for d in range(10))
    rows = [ForgettingRow("digits", "3", "D", digits),        # letter of '3'
            ForgettingRow("digits", "7", "7", digits),        # the label itself (option text rule)
            ForgettingRow("digits", "1", "A", digits),        # 'A' is '0': wrong
            ForgettingRow("digits", "2", None, digits),
            ForgettingRow("shapes", "circle", "a", ("circle", "square"))]
    result = score(rows)
    assert result["sets"]["digits"] == {"accuracy": 0.5, "questions": 4, "classes": 10}
    assert result["sets"]["shapes"]["accuracy"] == 1.0
    assert result["meanAccuracy"] == 0.75 and result["questions"] == 5


def test_reader_builds_lettered_questions_from_the_whole_set_before_the_limit(tmp_path):
    schema = pa.schema([("question_id", pa.string()), ("set", pa.string()), ("question", pa.string()),
                        ("image", IMAGE_STRUCT), ("label", pa.string())])
    rows = [{"question_id": f"s/{n}", "set": "s", "question": "What is it?", "image": {"bytes": b"i", "path": "p"},
             "label": label} for n, label in enumerate(["dog", "cat", "emu"])]
    path = tmp_path / "forgetting.parquet"
    path.write_bytes(parquet_bytes(rows, schema))
    items = forgetting.load(str(path), limit=1)
    assert len(items) == 1 and items[0].options == ("cat", "dog", "emu") and items[0].answer == "dog"
    assert items[0].question == "What is it?\nA. cat\nB. dog\nC. emu"
    assert forgetting.score_items(items, ["B"])["meanAccuracy"] == 1.0
