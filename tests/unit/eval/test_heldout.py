"""Held-out Vision-Flan tasks: option parsing, exact/option match, per-task accuracy, and the reader."""

from __future__ import annotations

import json

import pytest

from vlmtune.data.demo import ensure_demo_suite
from vlmtune.eval import heldout
from vlmtune.eval.heldout import HeldoutRow, is_right, normalize, parse_options, score

INSTRUCTION = "Select the color of the shape.\nOptions: (A) red (B) dark blue (C) green"


def test_options_are_parsed_from_the_instruction():
    assert parse_options(INSTRUCTION) == {"A": "red", "B": "dark blue", "C": "green"}
    assert parse_options("Options: (a) yes (b) no") == {"A": "yes", "B": "no"}
    assert parse_options("Answer (A) only") == {}  # one option is no option list


@pytest.mark.parametrize(
    ("answer", "prediction", "right"),
    [
        ("circle", "Circle.", True),
        ("circle", " circle ", True),
        ("ABC", "abc", True),
        ("circle", "a circle", False),
        ("two", "2", False),
    ],
)
def test_exact_match_after_normalizing(answer, prediction, right):
    assert is_right(answer, prediction, {}) is right


@pytest.mark.parametrize(
    ("answer", "prediction", "right"),
    [
        ("B", "B", True),
        ("B", "(B) dark blue", True),
        ("B", "dark blue", True),
        ("B", "b", True),
        ("B", "A", False),
        ("B", "red", False),
        ("dark blue", "B", True),  # the answer as option text, the prediction as its letter
        ("green", "(C)", True),
        ("green", "A", False),
    ],
)
def test_option_match_accepts_either_form_of_the_right_option(answer, prediction, right):
    assert is_right(answer, prediction, parse_options(INSTRUCTION)) is right


def test_normalize():
    assert normalize('  "Dark   Blue."  ') == "dark blue"


def test_accuracy_per_task_micro_and_macro():
    rows = [
        HeldoutRow("t1", "yes", "yes", {}),
        HeldoutRow("t1", "no", "yes", {}),
        HeldoutRow("t1", "no", "no", {}),
        HeldoutRow("t1", "yes", None, {}),
        HeldoutRow("t2", "B", "b", {"A": "x", "B": "y"}),
    ]
    result = score(rows)
    assert result["tasks"] == {"t1": {"accuracy": 0.5, "questions": 4}, "t2": {"accuracy": 1.0, "questions": 1}}
    assert (result["accuracy"], result["meanTaskAccuracy"], result["questions"]) == (0.6, 0.75, 5)


def test_reader_uses_the_training_template_turn_and_limits_per_task(tmp_path):
    suite = ensure_demo_suite(tmp_path / "suite", per_task=1, heldout_per_task=3, seed=0, image_size=32)
    items = heldout.load(str(suite.heldout_annotations), limit=2, tasks=["color_choice", "shape_position"])
    assert [item.group for item in items] == ["shape_position"] * 2 + ["color_choice"] * 2
    raw = json.loads(suite.heldout_annotations.read_text())
    first = next(r for r in raw if r["task_name"] == "shape_position")
    # Vision-Flan puts <image> after this task's instruction; the prompt is the instruction, image moved first.
    assert first["conversations"][0]["value"].endswith("<image>")
    assert items[0].prompt == first["conversations"][0]["value"].replace("<image>", "").strip()
    assert items[0].answer == first["conversations"][1]["value"]
    assert items[0].image == (suite.root / first["image"]).read_bytes()
    assert items[0].question_id == f"shape_position/{first['image']}"  # Vision-Flan ids repeat: task + image


def test_scoring_saved_predictions_needs_no_image_files(tmp_path):
    from vlmtune.eval import score_file
    from vlmtune.eval.items import dumps_jsonl, prediction_records

    suite = ensure_demo_suite(tmp_path / "suite", per_task=1, heldout_per_task=2, seed=0, image_size=32)
    items = heldout.load(str(suite.heldout_annotations), read_images=False)
    assert items and all(item.image is None for item in items)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(dumps_jsonl(prediction_records(items, [item.answer for item in items])))
    for image in (suite.root / "images").rglob("*.png"):
        image.unlink()
    assert score_file("heldout", str(suite.heldout_annotations), str(predictions))["accuracy"] == 1.0
