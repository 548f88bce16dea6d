"""Demo benchmarks: built from the demo suite's held-out images in the published layouts, with exact truth."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import pytest

from vlmtune.data.demo import SHAPES, ensure_demo_suite
from vlmtune.eval import BENCHMARKS, score_predictions
from vlmtune.eval.demo import demo_records, write_demo_benchmark
from vlmtune.eval.items import prediction_records

NAMES = ("mme", "pope", "mc", "heldout", "forgetting", "mmmu")
JUDGED = ("llavabench", "mmvet")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return ensure_demo_suite(tmp_path_factory.mktemp("suite"), per_task=1, heldout_per_task=6, seed=3, image_size=32)


@pytest.fixture(scope="module")
def data(suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return {name: write_demo_benchmark(name, suite, str(out)) for name in NAMES + JUDGED}


@pytest.mark.parametrize("name", NAMES)
def test_the_ground_truth_as_predictions_scores_perfectly(name, data):
    items = BENCHMARKS[name].load(data[name])
    result = score_predictions(name, items, prediction_records(items, [item.answer for item in items]))
    headline = BENCHMARKS[name].headline(result)
    if name == "mme":
        present = len(result["subtasks"])
        assert present == 8 and headline["mme.perception"] + headline["mme.cognition"] == 200.0 * present
    elif name == "pope":
        assert headline["pope.f1"] == 1.0
    else:
        assert min(headline.values()) == 1.0


def test_mme_demo_has_a_yes_and_a_no_question_per_image_in_the_lmms_lab_layout(data, suite):
    frame = pd.read_parquet(data["mme"])
    assert list(frame.columns) == ["question_id", "image", "question", "answer", "category"]
    for _, pair in frame.groupby("question_id", sort=False):
        assert list(pair["answer"]) == ["Yes", "No"]
        assert pair["question"].str.endswith(" Please answer yes or no.").all()
        assert pair["image"].iloc[0]["bytes"][:4] == b"\x89PNG"
    existence = frame[frame.category == "existence"]
    shapes = {r.image.split("/")[-1]: r.answer for r in demo_records(suite)["shape_name"]}
    for row in existence.itertuples():
        named = re.search(r"Is there a (\w+)", row.question).group(1)
        assert (named == shapes[row.question_id.split("/")[1]]) == (row.answer == "Yes")


def test_pope_demo_is_balanced_and_its_negatives_are_absent(data, suite):
    frame = pd.read_parquet(data["pope"])
    assert list(frame.columns) == ["id", "question_id", "question", "answer", "image_source", "image", "category"]
    for split in ("random", "popular"):
        assert Counter(frame[frame.category == split].answer) == {"yes": 6, "no": 6}
    drawn = {r.image.split("/")[-1].removesuffix(".png"): r.answer for r in demo_records(suite)["shape_name"]}
    for row in frame[frame.category != "adversarial"].itertuples():
        shape = re.search(r"Is there a (\w+) in the image\?", row.question).group(1)
        assert shape in SHAPES and (shape == drawn[row.image_source]) == (row.answer == "yes")
    assert frame.question_id.is_unique


def test_mmbench_demo_tsv_reads_with_pandas(data):
    frame = pd.read_csv(data["mc"], sep="\t")
    assert set(frame.category) == {"color", "shape"} and set(frame.answer) <= set("ABCD")
    assert frame[frame.category == "shape"].D.isna().all()  # three options: D is empty


def test_the_judged_demo_benchmarks_hold_exact_references_in_the_published_layouts(data, suite):
    import json
    from pathlib import Path

    from vlmtune.eval import llavabench, mmvet

    folder = Path(data["llavabench"])
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()]
    assert Counter(q["category"] for q in questions) == {"conv": 6, "detail": 6, "complex": 6}
    items = llavabench.load(data["llavabench"])
    colors = {r.image.split("/")[-1]: r.answer for r in demo_records(suite)["shape_color"]}
    conv = [item for item in items if item.group == "conv"]
    for item, question in zip(conv, [q for q in questions if q["category"] == "conv"]):
        assert item.answer == f"The shape in the image is {colors[question['image'].split('_', 2)[-1]]}."
        assert item.extra["context"].startswith("A single ") and item.image[:4] == b"\x89PNG"
    vet = mmvet.load(data["mmvet"])
    assert {item.group for item in vet} == {"rec", "ocr", "math_rec", "rec_spat", "math_ocr"}
    dots = [item for item in vet if item.group == "math_rec"]
    assert all(re.fullmatch(r"\d<OR>[a-z]+", item.answer) for item in dots)
    # A judge that agrees with the truth gives full marks: the demo files and the scorers fit together.
    assert mmvet.score_items(vet, [i.answer for i in vet], [["1.0"]] * len(vet))["total"] == 1.0
    assert llavabench.score_items(items, [i.answer for i in items], [["9 9"]] * len(items))["relative"] == 1.0


def test_mmmu_demo_is_the_release_layout(data):
    from pathlib import Path

    folder = Path(data["mmmu"])
    assert sorted(path.name for path in folder.iterdir()) == ["Art", "Computer_Science", "Geography", "Math", "Physics"]
    frame = pd.read_parquet(folder / "Art" / "validation-00000-of-00001.parquet")
    assert frame.id.str.match(r"validation_Art_\d+$").all() and set(frame.question_type) == {"multiple-choice"}
    assert frame.question.str.contains("<image 1>").all() and frame.image_2.isna().all()
    math = pd.read_parquet(folder / "Math" / "validation-00000-of-00001.parquet")
    assert set(math.question_type) == {"open"} and (math.options == "[]").all()
