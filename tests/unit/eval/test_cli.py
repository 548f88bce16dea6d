"""`vlmtune eval demo` writes every demo benchmark; `vlmtune eval score` scores saved predictions on each."""

from __future__ import annotations

import json

import pytest

from vlmtune.cli import main
from vlmtune.eval import BENCHMARKS
from vlmtune.eval.items import dumps_jsonl, prediction_records

NAMES = ("mme", "pope", "mc", "heldout", "forgetting")


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-demo")
    capture = pytest.MonkeyPatch()
    lines = []
    capture.setattr("builtins.print", lambda *args, **_: lines.append(" ".join(map(str, args))))
    try:
        assert (
            main(
                ["eval", "demo", "--out", str(out), "--per-task", "1", "--heldout-per-task", "4", "--image-size", "32"]
            )
            == 0
        )
    finally:
        capture.undo()
    return dict(line.split(maxsplit=1) for line in lines)


@pytest.mark.parametrize("name", NAMES)
def test_score_each_demo_benchmark_from_a_predictions_file(name, demo_data, tmp_path, capsys):
    items = BENCHMARKS[name].load(demo_data[name])
    # Every second answer wrong on purpose, and the file in reverse order: matching is by id (and text).
    wrong = {"mme": lambda a: "maybe", "pope": lambda a: "yes" if a == "no" else "No"}.get(name, lambda a: "Z")
    predictions = [item.answer if i % 2 == 0 else wrong(item.answer) for i, item in enumerate(items)]
    records = prediction_records(items, predictions)[::-1]
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(dumps_jsonl(records))
    assert (
        main(["eval", "score", "--benchmark", name, "--data", demo_data[name], "--predictions", str(path), "--json"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    expected = BENCHMARKS[name].score(items, predictions)
    assert printed == json.loads(
        json.dumps(
            {**expected, "items": len(items), "missingPredictions": 0, "unusedPredictions": 0, "emptyPredictions": 0}
        )
    )
    # Hand-computed: MME images get one right of two (acc 50 + acc+ 0 per subtask, 6 perception and
    # 2 cognition subtasks); every MMBench question has a wrong rotation; the rest get half right.
    assert BENCHMARKS[name].headline(printed) | {"mc.singleAccuracy": None} == {
        "mme": {"mme.perception": 300.0, "mme.cognition": 100.0},
        "pope": {"pope.f1": pytest.approx(2 / 3), "pope.accuracy": 0.5, "pope.yesRatio": 1.0},  # all said yes
        "mc": {"mc.circularAccuracy": 0.0},
        "heldout": {"heldout.accuracy": 0.5, "heldout.meanTaskAccuracy": 0.5},
        "forgetting": {"forgetting.meanAccuracy": 0.5},
    }[name] | {"mc.singleAccuracy": None}

    assert main(["eval", "score", "--benchmark", name, "--data", demo_data[name], "--predictions", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"## {BENCHMARKS[name].title}\n\n|")


def test_bad_inputs_exit_1_with_a_message(demo_data, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question_id": 1}\n')
    assert main(["eval", "score", "--benchmark", "mme", "--data", demo_data["mme"], "--predictions", str(path)]) == 1
    assert f"{path} line 1: expected an object with question_id and prediction" in capsys.readouterr().err
    assert (
        main(["eval", "score", "--benchmark", "pope", "--data", str(tmp_path / "none"), "--predictions", str(path)])
        == 1
    )
    assert "no such file or folder" in capsys.readouterr().err


def _judged_demo(tmp_path):
    out = tmp_path / "demo"
    capture = pytest.MonkeyPatch()
    capture.setattr("builtins.print", lambda *args, **_: None)
    try:
        assert (
            main(
                ["eval", "demo", "--out", str(out), "--per-task", "1", "--heldout-per-task", "2", "--image-size", "32"]
            )
            == 0
        )
    finally:
        capture.undo()
    return out


def test_judged_benchmarks_score_from_the_reference_scripts_review_files(tmp_path, capsys):
    out = _judged_demo(tmp_path)
    llava = BENCHMARKS["llavabench"].load(str(out / "llava-bench-in-the-wild"))
    answers = tmp_path / "answers.jsonl"  # LLaVA's model_vqa.py answer file: the answer is `text`
    answers.write_text(
        "".join(
            json.dumps(
                {
                    "question_id": int(i.question_id),
                    "prompt": i.question,
                    "text": "x",
                    "answer_id": "a",
                    "model_id": "m",
                }
            )
            + "\n"
            for i in llava
        )
    )
    reviews = tmp_path / "reviews.jsonl"  # eval_gpt_review_bench.py's output
    scores = ["8 4", "10 5", "oops", "6 6", "8 2", "7 7"]
    reviews.write_text(
        "".join(
            json.dumps(
                {
                    "id": n + 1,
                    "question_id": int(i.question_id),
                    "content": scores[n],
                    "tuple": [0, 0],
                    "category": f"llava_bench_{i.group}",
                }
            )
            + "\n"
            for n, i in enumerate(llava)
        )
    )
    assert (
        main(
            [
                "eval",
                "score",
                "--benchmark",
                "llavabench",
                "--data",
                str(out / "llava-bench-in-the-wild"),
                "--predictions",
                str(answers),
                "--reviews",
                str(reviews),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    # Parsed pairs: (8,4) (10,5) (6,6) (8,2) (7,7): reference 39/5, model 24/5 -> 24/39.
    assert result["relative"] == pytest.approx(24 / 39) and result["unparsable"] == 1
    assert (
        main(
            [
                "eval",
                "score",
                "--benchmark",
                "llavabench",
                "--data",
                str(out / "llava-bench-in-the-wild"),
                "--predictions",
                str(answers),
            ]
        )
        == 1
    )
    assert "give --reviews FILE" in capsys.readouterr().err

    vet = BENCHMARKS["mmvet"].load(str(out / "mm-vet"))
    results = tmp_path / "mmvet_results.json"  # MM-Vet's result file: {id: answer}
    results.write_text(json.dumps({i.question_id: "x" for i in vet}))
    grades = tmp_path / "grades.json"  # mm-vet_evaluator.py's grade file
    grades.write_text(
        json.dumps(
            {i.question_id: {"model": ["gpt-4-0613"], "content": [str(n % 2)], "score": [0]} for n, i in enumerate(vet)}
        )
    )
    assert (
        main(
            [
                "eval",
                "score",
                "--benchmark",
                "mmvet",
                "--data",
                str(out / "mm-vet"),
                "--predictions",
                str(results),
                "--reviews",
                str(grades),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["total"] == pytest.approx(sum(n % 2 for n in range(len(vet))) / len(vet))


def test_mmmu_scores_from_a_predictions_file(tmp_path, capsys):
    out = _judged_demo(tmp_path)
    items = BENCHMARKS["mmmu"].load(str(out / "mmmu"))
    right = {i.question_id: ("(" + i.answer + ")" if i.options else f"The answer is {i.answer}") for i in items}
    path = tmp_path / "mmmu.json"
    path.write_text(json.dumps(right))  # MMMU's output file: {id: response}
    assert (
        main(
            ["eval", "score", "--benchmark", "mmmu", "--data", str(out / "mmmu"), "--predictions", str(path), "--json"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 1.0 and result["questions"] == len(items) and result["guessed"] == 0
