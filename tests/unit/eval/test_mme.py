"""MME: the official tool's answer parsing and scores, on hand-computed cases; the lmms-lab Parquet reader."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlmtune.eval import mme
from vlmtune.eval.layouts import IMAGE_STRUCT, parquet_bytes
from vlmtune.eval.mme import MMERow, parse_answer, score


@pytest.mark.parametrize(
    ("prediction", "parsed"),
    [
        ("Yes", "yes"),
        ("no", "no"),
        ("  NO  ", "no"),
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("Not at all", "no"),  # 'no' inside the first four characters
        ("none", "no"),
        ("yesterday", "yes"),  # the official rule looks at characters, not words
        ("The answer is yes", "other"),  # yes/no must be at the start
        ("I think no", "other"),
        ("", "other"),
        (None, "other"),
        ("eyes", "yes"),
    ],
)
def test_answers_are_parsed_as_the_official_tool_does(prediction, parsed):
    assert parse_answer(prediction) == parsed


def test_scores_are_acc_plus_acc_plus_per_subtask_summed_per_family():
    rows = [
        # existence: image 1 both right, image 2 one right -> acc 3/4, acc+ 1/2 -> 75 + 50 = 125
        MMERow("existence", "e1", "Yes", "Yes"),
        MMERow("existence", "e1", "No", "No"),
        MMERow("existence", "e2", "Yes", "yes."),
        MMERow("existence", "e2", "No", "Yes"),
        # count: 'other' answers are wrong and counted -> acc 1/4, acc+ 0 -> 25
        MMERow("count", "c1", "Yes", "maybe"),
        MMERow("count", "c1", "No", "No"),
        MMERow("count", "c2", "Yes", "No"),
        MMERow("count", "c2", "No", None),
        # code_reasoning (cognition): all right -> 200
        MMERow("code_reasoning", "k1", "Yes", "Yes"),
        MMERow("code_reasoning", "k1", "No", "No"),
    ]
    result = score(rows)
    assert result["subtasks"]["existence"] == {
        "acc": 0.75,
        "accPlus": 0.5,
        "score": 125.0,
        "questions": 4,
        "images": 2,
        "other": 0,
    }
    assert result["subtasks"]["count"]["score"] == 25.0 and result["subtasks"]["count"]["other"] == 2
    assert result["perception"] == 150.0 and result["cognition"] == 200.0 and result["total"] == 350.0
    assert "OCR" in result["absentSubtasks"] and "existence" not in result["absentSubtasks"]


def test_a_perfect_run_scores_2000_and_800():
    rows = [
        MMERow(task, f"{task}/1.png", answer, answer)
        for task in mme.PERCEPTION + mme.COGNITION
        for answer in ("Yes", "No")
    ]
    result = score(rows)
    assert (result["perception"], result["cognition"]) == (2000.0, 800.0)


def test_unknown_category_and_non_yes_no_answer_are_errors():
    with pytest.raises(ValueError, match="unknown MME categories"):
        score([MMERow("vibes", "x", "Yes", "Yes")])
    with pytest.raises(ValueError, match="yes/no"):
        score([MMERow("count", "x", "3", "3")])


def _mme_parquet(tmp_path, rows):
    schema = pa.schema(
        [
            ("question_id", pa.string()),
            ("image", IMAGE_STRUCT),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("category", pa.string()),
        ]
    )
    folder = tmp_path / "MME" / "data"
    folder.mkdir(parents=True)
    # Two shards, as lmms-lab/MME is published: the reader takes the folder, shards in name order.
    (folder / "test-00000-of-00002.parquet").write_bytes(parquet_bytes(rows[:4], schema))
    (folder / "test-00001-of-00002.parquet").write_bytes(parquet_bytes(rows[4:], schema))
    (folder / "README.md").write_text("not parquet")
    return folder


def test_reader_takes_a_folder_of_shards_keeps_image_pairs_whole_and_limits_images(tmp_path):
    rows = [
        {
            "question_id": f"{cat}/{n}.png",
            "image": {"bytes": f"{cat}{n}".encode(), "path": f"{n}.png"},
            "question": f"Q{i} {cat}/{n}? Please answer yes or no.",
            "answer": answer,
            "category": cat,
        }
        for cat in ("color", "OCR")
        for n in (1, 2, 3)
        for i, answer in enumerate(("Yes", "No"))
    ]
    items = mme.load(str(_mme_parquet(tmp_path, rows)), limit=2)
    assert [(item.group, item.question_id) for item in items] == [
        ("color", "color/1.png"),
        ("color", "color/1.png"),
        ("color", "color/2.png"),
        ("color", "color/2.png"),
        ("OCR", "OCR/1.png"),
        ("OCR", "OCR/1.png"),
        ("OCR", "OCR/2.png"),
        ("OCR", "OCR/2.png"),
    ]
    first = items[0]
    assert first.image == b"color1" and first.answer == "Yes"
    assert first.prompt == first.question + "\nAnswer the question using a single word or phrase."


def test_shared_question_ids_are_matched_by_question_text(tmp_path):
    from vlmtune.eval import score_predictions

    rows = [
        {
            "question_id": "color/1.png",
            "image": {"bytes": b"x", "path": "1.png"},
            "question": q,
            "answer": a,
            "category": "color",
        }
        for q, a in (("Is it red?", "Yes"), ("Is it blue?", "No"))
    ]
    items = mme.load(str(_mme_parquet(tmp_path, rows + rows[:0])))
    # Predictions in the other order: only the question text tells them apart.
    predictions = [
        {"question_id": "color/1.png", "question": " Is it blue? ", "prediction": "No"},
        {"question_id": "color/1.png", "question": "Is it red?", "prediction": "Yes"},
    ]
    result = score_predictions("mme", items, predictions)
    assert result["subtasks"]["color"]["score"] == 200.0 and result["missingPredictions"] == 0
