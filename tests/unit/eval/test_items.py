"""Matching predictions to questions, the predictions file format, and per-group limits."""

from __future__ import annotations

import pytest

from vlmtune.eval.items import (
    Item,
    PredictionsError,
    align,
    dumps_jsonl,
    loads_jsonl,
    prediction_records,
    take_per_group,
)


def _item(qid, question="q", group="g"):
    return Item(question_id=qid, question=question, prompt=question, image=b"", answer="yes", group=group)


def test_unique_ids_match_alone_and_compare_as_strings():
    items = [_item("1"), _item("2"), _item("3")]
    predictions = [
        {"question_id": 2, "question": "something else", "prediction": "no"},
        {"question_id": "1", "prediction": "yes"},
        {"question_id": "9", "prediction": "x"},
    ]
    alignment = align(items, predictions)
    assert alignment.predictions == ["yes", "no", None]
    assert (alignment.missing, alignment.unused) == (1, 1)


def test_shared_ids_need_the_question_text():
    items = [_item("img.png", "Is it red?"), _item("img.png", "Is it blue?")]
    predictions = [
        {"question_id": "img.png", "question": "Is it blue?", "prediction": "No"},
        {"question_id": "img.png", "prediction": "Yes"},
    ]  # no text: cannot be placed
    assert align(items, predictions).predictions == [None, "No"]


def test_predictions_file_round_trip_and_errors():
    items = [_item("1", "Q?"), _item("2", "R?")]
    records = prediction_records(items, ["yes", "nö"])
    assert loads_jsonl(b"\n" + dumps_jsonl(records) + b"\n") == [
        {"question_id": "1", "question": "Q?", "prediction": "yes", "_line": 2},
        {"question_id": "2", "question": "R?", "prediction": "nö", "_line": 3},
    ]
    with pytest.raises(PredictionsError, match="p.jsonl line 2: not JSON"):
        loads_jsonl(b'{"question_id": 1, "prediction": "a"}\n{oops\n', "p.jsonl")
    with pytest.raises(PredictionsError, match="line 1: expected an object"):
        loads_jsonl(b'{"question_id": 1}\n')
    with pytest.raises(PredictionsError, match="not UTF-8"):
        loads_jsonl(b'{"question_id": 1, "prediction": "\xff"}\n')


def test_result_files_keyed_by_id_and_llava_answer_files_are_read():
    # MM-Vet / MMMU result files: one JSON object, id -> answer; LLaVA answer files name the answer `text`.
    assert loads_jsonl(b'{"v1_0": "4", "v1_1": "cat"}') == [
        {"question_id": "v1_0", "prediction": "4", "_line": 1},
        {"question_id": "v1_1", "prediction": "cat", "_line": 2},
    ]
    llava = loads_jsonl(b'{"question_id": 0, "prompt": "Q", "text": "A dog.", "answer_id": "x"}\n')
    assert align([_item("0")], llava).predictions == ["A dog."]
    # LLaVA's POPE/MME answer files: the prompt is the question, then the answer-format instruction.
    pope = loads_jsonl(
        b'{"question_id": 7, "prompt": "Is there a cat?\\nAnswer the question using a single word '
        b'or phrase.", "text": "No"}\n'
    )
    assert align([_item("7", "Is there a cat?")], pope, match_text=True).predictions == ["No"]


def test_duplicate_ids_are_an_error_naming_the_file_both_lines_and_the_id():
    items = [_item("1"), _item("2")]
    records = loads_jsonl(
        b'{"question_id": 1, "prediction": "a"}\n\n{"question_id": "1", "prediction": "b"}\n', "run/p.jsonl"
    )
    with pytest.raises(PredictionsError) as caught:
        align(items, records, "run/p.jsonl")
    assert str(caught.value) == (
        "run/p.jsonl line 3: a second prediction for question_id '1' (the first is on "
        "line 1); keep one answer per question"
    )
    # Where ids are shared (MME), the same id with another question text is not a duplicate; the same text is.
    shared = [_item("img", "Is it red?"), _item("img", "Is it blue?")]
    ok = [
        {"question_id": "img", "question": "Is it red?", "prediction": "Yes"},
        {"question_id": "img", "question": "Is it blue?", "prediction": "No"},
    ]
    assert align(shared, ok).predictions == ["Yes", "No"]
    with pytest.raises(PredictionsError, match="line 2: a second prediction for question_id 'img'"):
        align(shared, [ok[0], ok[0]])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question_id": 1, "prediction": None}, "line 1 (question_id '1'): prediction must be a string, not null"),
        ({"question_id": 1, "prediction": 3}, "prediction must be a string, not 3"),
        ({"question_id": 1, "prediction": ["a"] * 30}, 'not ["a", "a", "a", "a", "a", "a", "a", "...; write'),  # cut
        ({"question_id": True, "prediction": "a"}, "line 1: question_id must be a string or an integer, not true"),
        ({"question_id": 1.5, "prediction": "a"}, "question_id must be a string or an integer, not 1.5"),
        ({"question_id": None, "text": "a"}, "question_id must be a string or an integer, not null"),
    ],
)
def test_wrong_types_are_one_line_errors(record, message):
    with pytest.raises(PredictionsError) as caught:
        align([_item("1")], [record], "f.jsonl")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_text_matching_for_every_id_when_asked():
    items = [_item("7", "Is there a cat?")]
    assert align(items, [{"question_id": "7", "prediction": "no"}], match_text=True).predictions == [None]
    assert align(
        items, [{"question_id": "7", "question": "Is there a cat? ", "prediction": "no"}], match_text=True
    ).predictions == ["no"]


def test_take_per_group_counts_units_not_rows():
    items = [
        _item("a", group="x"),
        _item("a", group="x"),
        _item("b", group="x"),
        _item("c", group="x"),
        _item("d", group="y"),
    ]
    assert [i.question_id for i in take_per_group(items, 2)] == ["a", "a", "b", "d"]
    assert take_per_group(items, None) == items
