"""Forgetting suite (the paper's CF): classification sets as multiple choice over label names, or open-ended for
sets too large to letter; accuracy per set and their mean."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlmtune.eval import forgetting
from vlmtune.eval.forgetting import ForgettingRow, score, set_options
from vlmtune.eval.layouts import IMAGE_STRUCT, parquet_bytes


def test_options_are_the_sorted_distinct_labels_or_none_for_a_set_too_large_to_letter():
    assert set_options(["cat", "ant", "cat", "bee"]) == ("ant", "bee", "cat")
    assert len(set_options([str(n) for n in range(26)])) == 26
    assert set_options([str(n) for n in range(27)]) == ()  # CIFAR-100 and miniImageNet are asked open-ended


@pytest.mark.parametrize(
    ("answer", "label", "right"),
    [
        ("It is a maple tree.", "maple_tree", True),
        ("MAPLE-TREE", "maple_tree", True),
        ("maple", "maple_tree", False),
        ("a tree, maple", "maple_tree", False),
        ("pineapple", "apple", False),
        ("an apple", "apple", True),
        ("", "apple", False),
        (None, "apple", False),
    ],
)
def test_open_answers_name_the_label_as_whole_words(answer, label, right):
    assert forgetting.names_label(answer, label) is right


def test_a_large_set_is_asked_open_ended_and_cf_is_the_mean_over_sets(tmp_path):
    schema = pa.schema(
        [
            ("question_id", pa.string()),
            ("set", pa.string()),
            ("question", pa.string()),
            ("image", IMAGE_STRUCT),
            ("label", pa.string()),
        ]
    )
    rows = [
        {
            "question_id": f"c/{n}",
            "set": "cifar100",
            "question": "What is the object in the image?",
            "image": {"bytes": b"i", "path": "p"},
            "label": f"class_{n}",
        }
        for n in range(30)
    ]
    rows += [
        {
            "question_id": "m/0",
            "set": "mnist",
            "question": "Which digit?",
            "image": {"bytes": b"i", "path": "p"},
            "label": "7",
        },
        {
            "question_id": "m/1",
            "set": "mnist",
            "question": "Which digit?",
            "image": {"bytes": b"i", "path": "p"},
            "label": "1",
        },
    ]
    path = tmp_path / "forgetting.parquet"
    path.write_bytes(parquet_bytes(rows, schema))
    items = forgetting.load(str(path))
    big = items[0]
    assert big.options == () and big.prompt == (
        "What is the object in the image?\nAnswer the question using a single word or phrase."
    )
    predictions = ["class 0"] + ["no idea"] * 29 + ["B", "A"]  # mnist options: ("1", "7")
    result = forgetting.score_items(items, predictions)
    assert result["sets"]["cifar100"] == {"accuracy": 1 / 30, "questions": 30, "classes": 30, "openEnded": True}
    assert result["sets"]["mnist"]["accuracy"] == 1.0
    assert result["meanAccuracy"] == pytest.approx((1 / 30 + 1.0) / 2)  # each set weighs the same
    assert forgetting.chance(items) == {"forgetting.meanAccuracy": pytest.approx((0 + 1 / 2) / 2)}


def test_accuracy_per_set_and_mean_over_sets():
    digits = tuple(str(d) for d in range(10))
    rows = [
        ForgettingRow("digits", "3", "D", digits),  # letter of '3'
        ForgettingRow("digits", "7", "7", digits),  # the label itself (option text rule)
        ForgettingRow("digits", "1", "A", digits),  # 'A' is '0': wrong
        ForgettingRow("digits", "2", None, digits),
        ForgettingRow("shapes", "circle", "a", ("circle", "square")),
    ]
    result = score(rows)
    assert result["sets"]["digits"] == {"accuracy": 0.5, "questions": 4, "classes": 10, "openEnded": False}
    assert result["sets"]["shapes"]["accuracy"] == 1.0
    assert result["meanAccuracy"] == 0.75 and result["questions"] == 5


def test_reader_builds_lettered_questions_from_the_whole_set_before_the_limit(tmp_path):
    schema = pa.schema(
        [
            ("question_id", pa.string()),
            ("set", pa.string()),
            ("question", pa.string()),
            ("image", IMAGE_STRUCT),
            ("label", pa.string()),
        ]
    )
    rows = [
        {
            "question_id": f"s/{n}",
            "set": "s",
            "question": "What is it?",
            "image": {"bytes": b"i", "path": "p"},
            "label": label,
        }
        for n, label in enumerate(["dog", "cat", "emu"])
    ]
    path = tmp_path / "forgetting.parquet"
    path.write_bytes(parquet_bytes(rows, schema))
    items = forgetting.load(str(path), limit=1)
    assert len(items) == 1 and items[0].options == ("cat", "dog", "emu") and items[0].answer == "dog"
    assert items[0].question == "What is it?\nA. cat\nB. dog\nC. emu"
    assert forgetting.score_items(items, ["B"])["meanAccuracy"] == 1.0
