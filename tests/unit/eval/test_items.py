"""Matching predictions to questions, the predictions file format, and per-group limits."""

from __future__ import annotations

import pytest

from vlmtune.eval.items import Item, align, dumps_jsonl, loads_jsonl, prediction_records, take_per_group


def _item(qid, question="q", group="g"):
    return Item(question_id=qid, question=question, prompt=question, image=b"", answer="yes", group=group)


def test_unique_ids_match_alone_and_compare_as_strings():
    items = [_item("1"), _item("2"), _item("3")]
    predictions = [{"question_id": 2, "question": "something else", "prediction": "no"},
                   {"question_id": "1", "prediction": "yes"}, {"question_id": "9", "prediction": "x"}]
    alignment = align(items, predictions)
    assert alignment.predictions == ["yes", "no", None]
    assert (alignment.missing, alignment.unused) == (1, 1)


def test_shared_ids_need_the_question_text():
    items = [_item("img.png", "Is it red?"), _item("img.png", "Is it blue?")]
    predictions = [{"question_id": "img.png", "question": "Is it blue?", "prediction": "No"},
                   {"question_id": "img.png", "prediction": "Yes"}]  # no text: cannot be placed
    assert align(items, predictions).predictions == [None, "No"]


def test_predictions_file_round_trip_and_errors():
    items = [_item("1", "Q?"), _item("2", "R?")]
    records = prediction_records(items, ["yes", "nö"])
    assert loads_jsonl(dumps_jsonl(records) + b"\n") == [
        {"question_id": "1", "question": "Q?", "prediction": "yes"},
        {"question_id": "2", "question": "R?", "prediction": "nö"}]
    with pytest.raises(ValueError, match="line 2: not JSON"):
        loads_jsonl(b'{"question_id": 1, "prediction": "a"}\n{oops\n')
    with pytest.raises(ValueError, match="line 1: expected an object"):
        loads_jsonl(b'{"question_id": 1}\n')


def test_take_per_group_counts_units_not_rows():
    items = [_item("a", group="x"), _item("a", group="x"), _item("b", group="x"), _item("c", group="x"),
             _item("d", group="y")]
    assert [i.question_id for i in take_per_group(items, 2)] == ["a", "a", "b", "d"]
    assert take_per_group(items, None) == items
