"""The comparison report from hand-made records and answers: the paper's columns with intervals, differences
between arms and their significance, a best arm only beyond the noise, notes, and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vlmtune.cli import report as report_command
from vlmtune.eval.items import Item, dumps_jsonl, item_record
from vlmtune.report import best_arms, summarize, table_markdown, verdict, write_report
from vlmtune.report.uncertainty import Answers

MANIFEST = {
    "experiment": "mini",
    "study": "synthetic-scaling",
    "arms": [
        {
            "name": "synthetic-0",
            "params": {"syntheticSamples": 0},
            "budgetSamples": 64,
            "jobs": [
                {
                    "name": "mini-shared-stage1",
                    "kind": "TuningJob",
                    "stage": "stage1",
                    "path": "shared/stage1",
                    "steps": 4,
                    "globalBatchSize": 16,
                },
                {"name": "mini-synthetic-0-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-0/eval"},
            ],
        },
        {
            "name": "synthetic-32",
            "params": {"syntheticSamples": 32},
            "budgetSamples": 80,
            "jobs": [
                {
                    "name": "mini-shared-stage1",
                    "kind": "TuningJob",
                    "stage": "stage1",
                    "path": "shared/stage1",
                    "steps": 4,
                    "globalBatchSize": 16,
                },
                {
                    "name": "mini-synthetic-32-stage2",
                    "kind": "TuningJob",
                    "stage": "stage2",
                    "path": "synthetic-32/stage2",
                    "steps": 2,
                    "globalBatchSize": 8,
                },
                {"name": "mini-synthetic-32-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-32/eval"},
            ],
        },
        {
            "name": "synthetic-64",
            "params": {"syntheticSamples": 64},
            "budgetSamples": 80,
            "jobs": [
                {
                    "name": "mini-shared-stage1",
                    "kind": "TuningJob",
                    "stage": "stage1",
                    "path": "shared/stage1",
                    "steps": 4,
                    "globalBatchSize": 16,
                },
                {
                    "name": "mini-synthetic-64-stage2",
                    "kind": "TuningJob",
                    "stage": "stage2",
                    "path": "synthetic-64/stage2",
                    "steps": 2,
                    "globalBatchSize": 8,
                },
                {"name": "mini-synthetic-64-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-64/eval"},
            ],
        },
    ],
}


def done(metrics: dict) -> dict:
    return {"phase": "Succeeded", "specHash": "h", "finishedAt": "2026-01-01T00:00:00+00:00", "metrics": metrics}


RECORDS = {
    "mini-shared-stage1": done({"loss.final": 3.0}),
    "mini-synthetic-0-eval": done({"pope.f1": 0.40, "pope.yesRatio": 0.90, "mme.perception": 500.0}),
    "mini-synthetic-32-stage2": done({"loss.final": 2.5}),
    "mini-synthetic-32-eval": done({"pope.f1": 0.60, "pope.yesRatio": 0.45, "mme.perception": 700.0}),
    "mini-synthetic-64-stage2": done({"loss.final": 2.0}),
    "mini-synthetic-64-eval": done({"pope.f1": 0.60, "pope.yesRatio": 0.30, "mme.perception": 650.0}),
}


def test_summary_has_one_row_per_arm_with_training_and_evaluation_metrics():
    summary = summarize(MANIFEST, RECORDS)
    # The paper's columns first, in the paper's order, then the rest.
    assert summary["metrics"] == ["samples", "loss.final", "mme.perception", "pope.f1", "pope.yesRatio"]
    assert summary["paperColumns"] == [
        {"metric": "mme.perception", "column": "MME"},
        {"metric": "pope.f1", "column": "POPE"},
    ]
    rows = {arm["name"]: arm["metrics"] for arm in summary["arms"]}
    assert rows["synthetic-0"] == {
        "samples": 64,
        "loss.final": 3.0,
        "pope.f1": 0.40,
        "pope.yesRatio": 0.90,
        "mme.perception": 500.0,
    }
    assert rows["synthetic-64"]["loss.final"] == 2.0  # the arm's last stage


def test_best_per_metric_follows_its_goal_and_ties_all_win():
    arms = summarize(MANIFEST, RECORDS)["arms"]
    assert best_arms(arms, "mme.perception") == ["synthetic-32"]
    assert best_arms(arms, "pope.f1") == ["synthetic-32", "synthetic-64"]
    assert best_arms(arms, "pope.yesRatio") == ["synthetic-32"]  # closest to 0.5, not the highest
    assert best_arms(arms, "loss.final") == ["synthetic-64"]  # lowest


def test_without_per_question_answers_nothing_is_called_best():
    # Changed from the first report, which bolded the highest value whatever the noise (issue 18).
    summary = summarize(MANIFEST, RECORDS)
    assert summary["best"] == {} and summary["comparisons"] == {}
    assert "**" not in table_markdown(summary)
    assert verdict(summary).startswith("No two arms have finished an evaluation with per-question answers")


def test_no_best_with_a_single_value_or_when_every_arm_ties():
    assert best_arms([{"name": "a", "metrics": {"x": 1.0}}, {"name": "b", "metrics": {}}], "x") == []
    assert best_arms([{"name": "a", "metrics": {"x": 0.0}}, {"name": "b", "metrics": {"x": 0.0}}], "x") == []


def test_table_shows_the_paper_columns_in_the_papers_units():
    table = table_markdown(summarize(MANIFEST, RECORDS)).splitlines()
    assert table[0] == "| arm | samples | final loss | MME | POPE |"
    assert table[2] == "| synthetic-0 | 64 | 3.000 | 500.0 | 40.0 |"
    assert table[3] == "| synthetic-32 | 80 | 2.500 | 700.0 | 60.0 |"


def test_unfinished_arms_show_what_they_have():
    records = {**RECORDS, "mini-synthetic-64-eval": {"phase": "Running", "specHash": "h"}}
    del records["mini-synthetic-64-stage2"]
    summary = summarize(MANIFEST, records)
    arm = summary["arms"][2]
    assert not arm["complete"] and arm["metrics"] == {"samples": 80}
    assert [job["phase"] for job in arm["jobs"]] == ["Succeeded", "NotStarted", "Running"]
    assert "| synthetic-64 (incomplete) | 80 | – | – | – |" in table_markdown(summary)


def write_run(root) -> None:
    (root / "experiment.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "experiment.json").write_text(json.dumps(MANIFEST))
    paths = {job["name"]: job["path"] for arm in MANIFEST["arms"] for job in arm["jobs"]}
    for name, record in RECORDS.items():
        folder = root / paths[name]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "job.json").write_text(json.dumps(record))
        if "stage" in name:
            rows = [{"step": step, "loss": 10.0 / step} for step in (1, 2)]
            (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_write_report_writes_markdown_summary_and_plots(tmp_path):
    write_run(tmp_path / "run")
    written = write_report(str(tmp_path / "run"))
    assert set(written) == {
        "report",
        "summary",
        "plot:paper-columns",
        "plot:other-metrics",
        "plot:loss",
        "plot:yes-ratio",
    }
    for name, uri in written.items():
        if name.startswith("plot:"):
            assert Path(uri).read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.startswith("# mini: synthetic-scaling") and "![yes-ratio](plots/yes-ratio.png)" in report
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["files"]["plot:loss"] == "plots/loss.png" and summary["best"] == {}


def test_report_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="vlmtune")
    report_command.register(parser.add_subparsers().add_parser, "report")
    write_run(tmp_path / "run")
    args = parser.parse_args(["report", str(tmp_path / "run")])
    assert args.handler(args) == 0
    assert "| synthetic-32 | 80 | 2.500 | 700.0 | 60.0 |" in capsys.readouterr().out
    args = parser.parse_args(["report", str(tmp_path / "nothing")])
    assert args.handler(args) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, value, text",
    [
        ("loss.final", 0.5, "0.500"),
        ("samples", 1536, "1536"),
        ("samples", 1_665_280, "1,665,280"),
        ("mme.perception", 712.25, "712.2"),
        ("mme.perception", 50.0, "50.0"),
        ("pope.f1", 0.8594, "85.9"),
        ("answers.emptyRate", 0.0, "0.0"),
    ],
)
def test_numbers_are_compact_and_fractions_are_percentages(name, value, text):
    summary = {"metrics": [name], "best": {}, "arms": [{"name": "a", "complete": True, "metrics": {name: value}}]}
    assert table_markdown(summary).splitlines()[2] == f"| a | {text} |"


# ------------------------------------------------------------------------------- with per-question answers


TWO_ARMS = {
    "experiment": "qs",
    "study": "mixed-vs-two-stage",
    "arms": [
        {
            "name": "two-stage",
            "params": {},
            "budgetSamples": 96,
            "jobs": [
                {
                    "name": "qs-two-stage-stage1",
                    "kind": "TuningJob",
                    "stage": "stage1",
                    "path": "two-stage/stage1",
                    "steps": 4,
                    "globalBatchSize": 16,
                },
                {
                    "name": "qs-two-stage-stage2",
                    "kind": "TuningJob",
                    "stage": "stage2",
                    "path": "two-stage/stage2",
                    "steps": 2,
                    "globalBatchSize": 16,
                },
                {"name": "qs-two-stage-eval", "kind": "EvalJob", "stage": "eval", "path": "two-stage/eval"},
            ],
        },
        {
            "name": "mixed",
            "params": {},
            "budgetSamples": 96,
            "jobs": [
                {
                    "name": "qs-mixed-train",
                    "kind": "TuningJob",
                    "stage": "train",
                    "path": "mixed/train",
                    "steps": 6,
                    "globalBatchSize": 16,
                },
                {"name": "qs-mixed-eval", "kind": "EvalJob", "stage": "eval", "path": "mixed/eval"},
            ],
        },
    ],
}


def _pope(n=60):
    return [
        Item(
            str(i),
            f"Is there a thing {i}?",
            "",
            None,
            "yes" if i % 2 else "no",
            ("random", "popular", "adversarial")[i % 3],
        )
        for i in range(n)
    ]


def _flip(answer):
    return "no" if answer == "yes" else "yes"


def _mc(n=30):
    return [
        Item(
            str(i + r * 1_000_000),
            "Which?",
            "",
            None,
            "ABC"[(i + r) % 3],
            "shape",
            ("x", "y", "z"),
            str(i),
            {"rotation": r},
        )
        for i in range(n)
        for r in range(3)
    ]


def _records(pope_two, pope_mixed):
    from vlmtune.eval import BENCHMARKS

    records = {
        name: done({"loss.final": 2.0}) for name in ("qs-two-stage-stage1", "qs-two-stage-stage2", "qs-mixed-train")
    }
    for job, predictions in (("qs-two-stage-eval", pope_two), ("qs-mixed-eval", pope_mixed)):
        result = BENCHMARKS["pope"].score(_pope(), predictions)
        records[job] = done(BENCHMARKS["pope"].headline(result))
    return records


def test_a_clear_difference_is_significant_and_bold_a_coin_flip_is_not():
    items = _pope()
    right = [item.answer for item in items]
    half = [item.answer if i % 4 < 2 else _flip(item.answer) for i, item in enumerate(items)]
    answers = {"qs-two-stage-eval": {"pope": Answers(items, right)}, "qs-mixed-eval": {"pope": Answers(items, half)}}
    summary = summarize(TWO_ARMS, _records(right, half), answers=answers, resamples=300)
    (pair,) = summary["comparisons"]["pope.f1"]["pairs"]
    assert (pair["a"], pair["b"], pair["winner"]) == ("two-stage", "mixed", "two-stage")
    assert pair["difference"] == pytest.approx(0.5) and 0 < pair["low"] < 0.5 < pair["high"] <= 1.0
    assert summary["best"]["pope.f1"] == ["two-stage"] and summary["best"]["pope.accuracy"] == ["two-stage"]
    assert summary["arms"][0]["intervals"]["pope.f1"] == [1.0, 1.0]  # every resample of all-right answers: F1 1
    assert "| two-stage | 96 | 2.000 | **100.0 (100.0–100.0)** |" in table_markdown(summary)
    text = verdict(summary)
    assert text.startswith("Significant at 95%: two-stage over mixed on POPE (+50.0 points, 95% interval +")
    assert "mixed on POPE (chance" not in text  # no chance levels were given to this summary

    # Two arms that answer the same: no difference at all, nothing bold, and the verdict says the figures cannot
    # tell the recipes apart.
    same = summarize(
        TWO_ARMS,
        _records(half, half),
        answers={"qs-two-stage-eval": {"pope": Answers(items, half)}, "qs-mixed-eval": {"pope": Answers(items, half)}},
        resamples=200,
    )
    (pair,) = same["comparisons"]["pope.f1"]["pairs"]
    assert pair["winner"] is None and (pair["low"], pair["high"]) == (0.0, 0.0)
    assert same["best"]["pope.f1"] == [] and "**" not in table_markdown(same)
    assert verdict(same).startswith("No difference between arms is significant at 95% on any of the paper's columns")


def test_a_small_difference_on_few_questions_is_not_significant():
    items = _pope(24)
    base = [item.answer if i % 2 else _flip(item.answer) for i, item in enumerate(items)]
    better = list(base)
    better[0] = items[0].answer  # one more right answer out of 24
    from vlmtune.eval import BENCHMARKS
    from vlmtune.report.uncertainty import compare

    comparison = compare(BENCHMARKS["pope"], {"a": Answers(items, better), "b": Answers(items, base)}, 500)
    (pair,) = comparison["pope.accuracy"]["pairs"]
    assert pair["difference"] == pytest.approx(1 / 24) and pair["winner"] is None and pair["low"] <= 0 <= pair["high"]


def test_the_bootstrap_interval_has_the_binomial_width_and_is_reproducible():
    from vlmtune.eval import BENCHMARKS
    from vlmtune.report.uncertainty import compare

    items = _pope(400)
    coin = [item.answer if (i * 7919) % 10 < 5 else _flip(item.answer) for i, item in enumerate(items)]
    first = compare(BENCHMARKS["pope"], {"a": Answers(items, coin)}, 1000)["pope.accuracy"]["arms"]["a"]
    # 95% half-width of an accuracy near 0.5 on 400 questions: 1.96 x sqrt(0.25 / 400) = 0.049.
    assert 0.08 <= first["high"] - first["low"] <= 0.115
    assert compare(BENCHMARKS["pope"], {"a": Answers(items, coin)}, 1000)["pope.accuracy"]["arms"]["a"] == first


def test_units_stay_whole_and_strata_keep_their_size():
    from vlmtune.eval import BENCHMARKS
    from vlmtune.report.uncertainty import resample, strata

    items = _mc(5)
    units = strata(BENCHMARKS["mc"], items)
    assert len(units) == 1 and sorted(map(len, units[0])) == [3] * 5  # one category, five questions of 3 rotations
    import numpy as np

    picks = resample(units, np.random.default_rng(1))
    assert len(picks) == 15 and all(len({items[i].source_id for i in picks[k : k + 3]}) == 1 for k in range(0, 15, 3))


def test_arms_are_paired_on_the_questions_both_answered():
    from vlmtune.report.uncertainty import paired

    items = _pope(6)
    order, aligned = paired({"a": Answers(items, list("abcdef")), "b": Answers(items[::-1][:5], list("EDCBA"))})
    assert [item.question_id for item in order] == ["1", "2", "3", "4", "5"]
    assert aligned["a"].predictions == list("bcdef") and aligned["b"].predictions == list("ABCDE")


def write_answer_run(root) -> None:
    """Two arms' full run folders: job records, metrics, and each EvalJob's results.json and scored answers."""
    from vlmtune.eval import BENCHMARKS
    from vlmtune.eval.benchmarks import score_predictions
    from vlmtune.eval.items import prediction_records
    from vlmtune.eval.report import results_document

    (root / "experiment.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "experiment.json").write_text(json.dumps(TWO_ARMS))
    plans = {"two-stage": lambda i, item: item.answer, "mixed": lambda i, item: "" if i % 3 == 0 else "A"}
    for arm, answer in plans.items():
        folder = root / arm / "eval"
        (folder / "scored").mkdir(parents=True)
        entries = {}
        for name, items in (("pope", _pope()), ("mc", _mc())):
            predictions = [
                answer(i, item) if name == "mc" else (item.answer if arm == "two-stage" else "")
                for i, item in enumerate(items)
            ]
            result = score_predictions(name, items, prediction_records(items, predictions))
            entries[name] = {
                "data": "d",
                "predictions": "p",
                "result": result,
                "chance": BENCHMARKS[name].chance(items),
            }
            (folder / "scored" / f"{name}.jsonl").write_bytes(
                dumps_jsonl({"item": item_record(item), "prediction": p} for item, p in zip(items, predictions))
            )
        document = results_document(f"qs-{arm}-eval", "m", {}, entries)
        (folder / "results.json").write_text(json.dumps(document))
        (folder / "job.json").write_text(json.dumps(done(document["headline"])))
    for job, steps in (("two-stage/stage1", 4), ("two-stage/stage2", 2), ("mixed/train", 6)):
        (root / job).mkdir(parents=True)
        (root / job / "job.json").write_text(json.dumps(done({"loss.final": 2.0})))
        (root / job / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": k, "loss": 5.0 / k}) + "\n" for k in range(1, steps + 1))
        )


def test_report_of_a_run_with_answers(tmp_path, capsys):
    write_answer_run(tmp_path / "run")
    written = write_report(str(tmp_path / "run"))
    report = (tmp_path / "run" / "report.md").read_text()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # The mixed arm answers "" to every POPE question: eval_pope.py reads that as yes (F1 0.667), the report says
    # how many answers were empty and never calls such an arm best without a significant margin.
    mixed = summary["arms"][1]["metrics"]
    assert mixed["pope.f1"] == pytest.approx(2 / 3) and mixed["answers.emptyRate"] == pytest.approx((60 + 30) / 150)
    assert any(note.startswith("mixed: 90 of 150 answers were empty (60%)") for note in summary["notes"])
    assert summary["best"]["pope.f1"] == ["two-stage"] and summary["best"]["pope.yesRatio"] == ["two-stage"]
    assert "| *chance (random answers)* |" in report and "## Differences between arms" in report
    assert "| POPE | two-stage − mixed | +33.3 |" in report
    assert "Significant at 95%: two-stage over mixed on MMBench (+100.0 points" in report
    for name in ("paper-columns", "other-metrics", "loss", "yes-ratio"):
        assert Path(written[f"plot:{name}"]).read_bytes()[:4] == b"\x89PNG"
    args = argparse.ArgumentParser(prog="vlmtune")
    report_command.register(args.add_subparsers().add_parser, "report")
    parsed = args.parse_args(["report", str(tmp_path / "run")])
    assert parsed.handler(parsed) == 0
    printed = capsys.readouterr().out
    assert (
        "| arm | samples | final loss | MMBench | POPE | empty answers |" in printed and "Significant at 95%" in printed
    )


def test_a_difference_between_arms_at_chance_is_not_a_result():
    """Both arms at or below random answers (one says "yes" to everything, one is wrong more often than a coin):
    they differ beyond the noise, but the verdict must not call either recipe better."""
    summary = {
        "paperColumns": [{"metric": "mme.perception", "column": "MME"}, {"metric": "pope.f1", "column": "POPE"}],
        "chance": {"mme.perception": 450.0, "pope.f1": 0.5},
        "comparisons": {
            "mme.perception": {
                "pairs": [
                    {
                        "a": "two-stage",
                        "b": "mixed",
                        "difference": -78.1,
                        "low": -112.5,
                        "high": -47.9,
                        "winner": "mixed",
                    }
                ]
            },
            "pope.f1": {
                "pairs": [
                    {"a": "two-stage", "b": "mixed", "difference": 0.3, "low": 0.2, "high": 0.4, "winner": "two-stage"}
                ]
            },
        },
        "arms": [
            {"name": "two-stage", "intervals": {"mme.perception": [187.5, 252.1], "pope.f1": [0.72, 0.88]}},
            {"name": "mixed", "intervals": {"mme.perception": [300.0, 300.0], "pope.f1": [0.41, 0.55]}},
        ],
    }
    text = verdict(summary)
    assert text.startswith(
        "Significant at 95%: two-stage over mixed on POPE (+30.0 points, 95% interval +20.0 to +40.0)."
    )
    assert (
        "Beyond the noise but not a result (the better arm does not beat random answers): mixed over two-stage on "
        "MME (+78.1 score (max 2000), 95% interval +47.9 to +112.5)." in text
    )
    assert "Not above random answers: two-stage, mixed on MME (chance 450.0); mixed on POPE (chance 50.0)." in text

    summary["comparisons"].pop("pope.f1")
    summary["paperColumns"].pop()
    text = verdict(summary)
    assert text.startswith("No difference between arms that beat random answers is significant at 95%")


def test_the_verdict_says_when_an_arm_is_not_distinguishable_from_random_answers():
    summary = {
        "paperColumns": [{"metric": "pope.f1", "column": "POPE"}],
        "chance": {"pope.f1": 0.5},
        "comparisons": {
            "pope.f1": {
                "pairs": [
                    {"a": "two-stage", "b": "mixed", "difference": 0.04, "low": -0.05, "high": 0.12, "winner": None}
                ]
            }
        },
        "arms": [
            {"name": "two-stage", "intervals": {"pope.f1": [0.45, 0.62]}},
            {"name": "mixed", "intervals": {"pope.f1": [0.41, 0.55]}},
        ],
    }
    text = verdict(summary)
    assert text.startswith("No difference between arms is significant at 95%")
    assert "Not above random answers: two-stage, mixed on POPE (chance 50.0)." in text
    assert text.endswith("run-to-run training noise is not in them.")


def test_an_arm_better_only_at_failing_is_not_bold():
    """mixed answers every POPE question wrong, two-stage half of them: two-stage is better beyond the noise, but at
    chance itself, so the table bolds neither and the verdict calls the difference no result."""
    items = _pope()
    half = [item.answer if i % 4 < 2 else _flip(item.answer) for i, item in enumerate(items)]
    wrong = [_flip(item.answer) for item in items]
    answers = {"qs-two-stage-eval": {"pope": Answers(items, half)}, "qs-mixed-eval": {"pope": Answers(items, wrong)}}
    chance = {"pope.accuracy": 0.5, "pope.f1": 0.5}
    evaluations = {"qs-two-stage-eval": {"chance": chance}, "qs-mixed-eval": {"chance": chance}}
    summary = summarize(TWO_ARMS, _records(half, wrong), answers=answers, resamples=300, evaluations=evaluations)
    (pair,) = summary["comparisons"]["pope.accuracy"]["pairs"]
    assert pair["winner"] == "two-stage" and pair["low"] > 0
    assert summary["best"]["pope.accuracy"] == [] and summary["best"]["pope.f1"] == []
    assert "**" not in table_markdown(summary)
    text = verdict(summary)
    assert text.startswith("No difference between arms that beat random answers is significant at 95%")
    assert (
        "Beyond the noise but not a result (the better arm does not beat random answers): two-stage over mixed" in text
    )
