"""POPE: LLaVA eval_pope.py's answer parsing and metrics, on hand-computed cases; the lmms-lab Parquet reader."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlmtune.eval import pope
from vlmtune.eval.layouts import IMAGE_STRUCT, parquet_bytes
from vlmtune.eval.pope import POPERow, parse_answer, score


@pytest.mark.parametrize(
    ("prediction", "parsed"),
    [
        ("No", "no"),
        ("no, there is not.", "no"),
        ("There is no dog in the image.", "no"),
        ("It is not there", "no"),
        ("Yes", "yes"),
        ("Yes. No dog is visible.", "yes"),  # first sentence only
        ("None", "yes"),
        ("Nope", "yes"),
        ("NO", "yes"),
        ("Not sure", "yes"),  # only 'No', 'not', 'no' as words
        ("No\nthere", "yes"),  # words are split on spaces only, as in eval_pope.py
        ("", "yes"),
        (None, "yes"),
    ],
)
def test_answers_are_parsed_as_llava_eval_pope(prediction, parsed):
    assert parse_answer(prediction) == parsed


def test_metrics_per_split_overall_and_mean_f1():
    rows = [
        POPERow("random", "yes", "Yes"),
        POPERow("random", "yes", "No"),  # TP, FN
        POPERow("random", "no", "Yes"),
        POPERow("random", "no", "No"),  # FP, TN
        POPERow("popular", "yes", "Yes"),
        POPERow("popular", "no", "Yes"),
        POPERow("popular", "no", "yes"),
    ]
    result = score(rows)
    random, popular, overall = result["splits"]["random"], result["splits"]["popular"], result["overall"]
    assert random == {
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "yesRatio": 0.5,
        "tp": 1,
        "fp": 1,
        "tn": 1,
        "fn": 1,
        "questions": 4,
    }
    # popular: TP 1, FP 2 -> precision 1/3, recall 1, F1 = 2(1/3)(1)/(4/3) = 1/2, accuracy 1/3, all yes
    assert (popular["precision"], popular["recall"], popular["accuracy"]) == (1 / 3, 1.0, 1 / 3)
    assert popular["yesRatio"] == 1.0
    assert popular["f1"] == pytest.approx(0.5)
    # pooled: TP 2, FP 3, TN 1, FN 1
    assert (overall["tp"], overall["fp"], overall["tn"], overall["fn"]) == (2, 3, 1, 1)
    assert overall["precision"] == 0.4 and overall["recall"] == 2 / 3 and overall["yesRatio"] == 5 / 7
    assert result["meanF1"] == pytest.approx(0.5)
    assert list(result["splits"]) == ["random", "popular"]  # POPE's split order, absent splits left out


def test_no_yes_predicted_gives_zero_not_a_crash():
    result = score([POPERow("adversarial", "yes", "No"), POPERow("adversarial", "no", "No")])
    split = result["splits"]["adversarial"]
    assert (split["precision"], split["recall"], split["f1"], split["accuracy"], split["yesRatio"]) == (0, 0, 0, 0.5, 0)


def _pope_file(tmp_path, rows):
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("question_id", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("image_source", pa.string()),
            ("image", IMAGE_STRUCT),
            ("category", pa.string()),
        ]
    )
    path = tmp_path / "pope.parquet"
    path.write_bytes(parquet_bytes(rows, schema))
    return path


def test_reader_limits_per_split_and_keys_on_id_when_question_ids_repeat(tmp_path):
    rows = [
        {
            "id": str(n),
            "question_id": str(n % 3 + 1),
            "question": f"Is there a cat {n}?",
            "answer": "yes",
            "image_source": f"COCO_{n}",
            "image": {"bytes": b"img", "path": None},
            "category": split,
        }
        for n, split in enumerate(["random"] * 3 + ["popular"] * 3)
    ]
    items = pope.load(str(_pope_file(tmp_path, rows)), limit=2)
    assert [(item.group, item.question_id) for item in items] == [
        ("random", "0"),
        ("random", "1"),
        ("popular", "3"),
        ("popular", "4"),
    ]
    assert items[0].prompt == "Is there a cat 0?\nAnswer the question using a single word or phrase."
    assert items[0].extra == {"image_source": "COCO_0"}
    unique = [dict(row, question_id=str(100 + n)) for n, row in enumerate(rows)]
    assert pope.load(str(_pope_file(tmp_path, unique)))[0].question_id == "100"


def test_a_missing_prediction_is_wrong_never_yes():
    rows = [
        POPERow("random", "yes", None),
        POPERow("random", "no", None),
        POPERow("random", "yes", "yes"),
        POPERow("random", "no", "no"),
    ]
    split = score(rows)["splits"]["random"]
    # Missing on a yes question: FN; missing on a no question: FP; neither counts as a "yes" said.
    assert (split["tp"], split["fp"], split["tn"], split["fn"]) == (1, 1, 1, 1)
    assert split["accuracy"] == 0.5 and split["yesRatio"] == 0.25


def test_an_empty_predictions_file_scores_zero_and_is_reported(tmp_path):
    from vlmtune.eval import score_file

    rows = [
        {
            "id": str(n),
            "question_id": str(n),
            "question": f"Is there a {thing}?",
            "answer": answer,
            "image_source": "x",
            "image": {"bytes": b"img", "path": None},
            "category": "random",
        }
        for n, (thing, answer) in enumerate([("cat", "yes"), ("dog", "no"), ("cow", "yes"), ("pig", "no")])
    ]
    data = _pope_file(tmp_path, rows)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = score_file("pope", str(data), str(empty))
    assert (result["meanF1"], result["overall"]["accuracy"], result["missingPredictions"]) == (0.0, 0.0, 4)
    # The id alone does not place a prediction: POPE matches on id and question text.
    wrong_text = tmp_path / "wrong-text.jsonl"
    wrong_text.write_text(
        '{"question_id": "0", "question": "Is there a dog?", "prediction": "yes"}\n'
        '{"question_id": "1", "question": "Is there a dog?", "prediction": "no"}\n'
    )
    result = score_file("pope", str(data), str(wrong_text))
    assert (result["missingPredictions"], result["unusedPredictions"], result["overall"]["tn"]) == (3, 1, 1)


def test_table_names_pooled_and_mean_of_splits_f1():
    rows = [
        POPERow("random", "yes", "yes"),
        POPERow("random", "no", "yes"),
        POPERow("popular", "yes", "no"),
        POPERow("popular", "no", "no"),
    ]
    headers, table = pope.table(score(rows))
    f1 = headers.index("F1 %")
    # random: TP 1, FP 1 -> F1 2/3; popular: FN 1, TN 1 -> F1 0; pooled: TP, FP, FN, TN 1 each -> F1 1/2.
    assert table[-2][0] == "**pooled**" and table[-2][f1] == pytest.approx(50.0)
    assert table[-1][0].startswith("**mean of splits**") and table[-1][f1] == pytest.approx((200 / 3 + 0) / 2)


def pope_dataset(count: int = 6):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question_id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "image_source": datasets.Value("string"),
            "image": datasets.Image(),
            "category": datasets.Value("string"),
        }
    )
    rows = [
        {
            "id": str(n),
            "question_id": str(n),
            "question": f"Is there a cat {n}?",
            "answer": "yes",
            "image_source": f"COCO_{n}",
            "image": {"bytes": b"\x89PNG img", "path": f"{n}.png"},
            "category": "random" if n % 2 else "popular",
        }
        for n in range(count)
    ]
    return datasets.Dataset.from_list(rows, features=features)


def test_reader_takes_a_save_to_disk_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"test": pope_dataset()}).save_to_disk(str(tmp_path / "pope"))
    items = pope.load(str(tmp_path / "pope"))
    assert len(items) == 6 and items[0].image == b"\x89PNG img" and {i.group for i in items} == {"random", "popular"}


def test_reader_takes_an_hf_uri_from_the_hub_cache_offline(tmp_path, monkeypatch):
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "datasets--lmms-lab--POPE"
    (repo / "snapshots" / commit / "data").mkdir(parents=True)
    pope_dataset().to_parquet(str(repo / "snapshots" / commit / "data" / "test-00000-of-00001.parquet"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = pope.load("hf://lmms-lab/POPE")
    assert [item.question_id for item in items] == [str(n) for n in range(6)]


def test_chance_is_the_best_that_answers_ignoring_the_image_reach():
    """Saying yes to everything scores F1 66.7% on a balanced split: that, not the coin's 50%, is what a model must
    beat on F1 to have looked at the image; and no image-blind answerer beats the chance figures."""
    from vlmtune.eval.items import Item

    items = [Item(str(i), "q", "", None, "yes" if i % 2 else "no", "random") for i in range(40)]
    items += [Item(str(100 + i), "q", "", None, "yes" if i % 4 == 0 else "no", "adversarial") for i in range(40)]
    figures = pope.chance(items)
    assert figures["pope.f1"] == pytest.approx((2 / 3 + (2 * 0.25 / 1.25)) / 2)
    assert figures["pope.accuracy"] == pytest.approx(1 - 30 / 80) and figures["pope.yesRatio"] == 0.5
    for rate in (0.0, 0.3, 0.5, 0.8, 1.0):  # deterministic "random" answers at each yes-rate
        answers = ["yes" if (i * 7919 % 100) < rate * 100 else "no" for i in range(len(items))]
        blind = pope.headline(pope.score_items(items, answers))
        assert (
            blind["pope.f1"] <= figures["pope.f1"] + 0.05 and blind["pope.accuracy"] <= figures["pope.accuracy"] + 0.1
        )
    always_yes = pope.headline(pope.score_items(items, ["yes"] * len(items)))
    assert always_yes["pope.f1"] == pytest.approx(figures["pope.f1"])
