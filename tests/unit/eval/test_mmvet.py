"""MM-Vet: the official grader's prompt, retries and per-capability totals, on hand-computed cases."""

from __future__ import annotations

import json

import pytest

from vlmtune.eval import mmvet
from vlmtune.eval.items import Item
from vlmtune.eval.mmvet import Grade, grading_prompt, parse_grade, score


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("0.5", 0.5),
        ("1.0 ", 1.0),
        ("0.7\n", 0.7),
        ("0.8 because it matches", 0.8),
        ("0", 0.0),
        ("1.5", None),
        ("-0.1", None),
        ("Correct", None),
        ("", None),
        (None, None),
        ("nan", None),  # vlmtune's departure: upstream's range check lets NaN through
        (" 0.5", None),  # the first space-separated word is empty
    ],
)
def test_grades_are_parsed_as_the_official_grader(reply, grade):
    assert parse_grade(reply) == grade


def test_the_prompt_is_the_published_one_byte_for_byte():
    import hashlib

    # sha256 of `prompt` in yuweihao/MM-Vet's mm-vet_evaluator.py at acde843e.
    assert hashlib.sha256(mmvet.PROMPT.encode()).hexdigest() == (
        "d1b3e0a5b4e72c888b77164489d705bba4dd149934fff564dfba6443d81afe3f"
    )


def _item(truth="-1<AND>-5", capabilities=("math",)):
    return Item(
        "v1_0",
        "What is x in the equation?",
        "What is x in the equation?",
        b"",
        truth,
        "math",
        extra={"capabilities": list(capabilities)},
    )


def test_the_grading_prompt_and_the_retry_ladder():
    item = _item()
    first = mmvet.next_request(item, "x = 3", [])
    assert first.user == mmvet.PROMPT + "\nWhat is x in the equation? | -1 <AND> -5 | x = 3 | "
    assert (first.system, first.temperature, first.max_tokens) == (None, 0.0, 3)
    temperatures = []
    replies = []
    while (request := mmvet.next_request(item, "x = 3", replies)) is not None:
        temperatures.append(request.temperature)
        if replies:
            assert request.user == first.user + "\nPredict the correctness of the answer (digit): "
        replies.append("Correct")  # never parses
    assert temperatures == [0.0, 0.0, 0.5, 1.0, 1.5] and len(replies) == 5
    assert mmvet.grade_of("x = 3", replies) == (0.0, "ungraded")
    assert mmvet.next_request(item, "x = 3", ["Correct", "0.5"]) is None  # a grade parsed: done
    assert mmvet.next_request(item, None, []) is None  # no prediction: never asked, graded 0.0
    assert grading_prompt("Q", "a<OR>b", "p").endswith("\nQ | a <OR> b | p | ")


def test_totals_per_capability_and_integration():
    grades = [
        Grade(("rec",), 1.0, "graded"),
        Grade(("rec", "ocr"), 0.5, "graded"),
        Grade(("ocr", "math"), 0.0, "ungraded"),
        Grade(("math",), 0.0, "missing"),
    ]
    result = score(grades)
    assert result["total"] == 1.5 / 4 and (result["ungraded"], result["missing"]) == (1, 1)
    assert {cap: c["score"] for cap, c in result["capabilities"].items()} == {"rec": 0.75, "ocr": 0.25, "math": 0.0}
    assert {name: c["score"] for name, c in result["integrations"].items()} == {
        "rec": 1.0,
        "ocr_rec": 0.5,
        "math_ocr": 0.0,
        "math": 0.0,
    }
    headers, rows = mmvet.table(result)
    assert rows[-1] == ["**total**", 4, 37.5]


def test_reader_takes_the_published_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "v1_0.png").write_bytes(b"png")
    (tmp_path / "mm-vet.json").write_text(
        json.dumps(
            {
                "v1_0": {
                    "imagename": "v1_0.png",
                    "capability": ["ocr", "math"],
                    "question": "What is x?",
                    "answer": "-1<AND>-5",
                }
            }
        )
    )
    (item,) = mmvet.load(str(tmp_path))
    assert (item.question_id, item.group, item.image, item.answer) == ("v1_0", "math_ocr", b"png", "-1<AND>-5")
    assert mmvet.score_items([item], ["x = -1"], [["0.5"]])["total"] == 0.5
