"""The comparison report from hand-made records: table with the best value per column, summary, plots."""

from __future__ import annotations

import argparse
import json

import pytest

from vlmtune.cli import report as report_command
from vlmtune.report import best_arms, summarize, table_markdown, write_report

MANIFEST = {
    "experiment": "mini", "study": "synthetic-scaling",
    "arms": [
        {"name": "synthetic-0", "params": {"syntheticSamples": 0}, "budgetSamples": 64,
         "jobs": [{"name": "mini-shared-stage1", "kind": "TuningJob", "stage": "stage1", "path": "shared/stage1",
                   "steps": 4, "globalBatchSize": 16},
                  {"name": "mini-synthetic-0-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-0/eval"}]},
        {"name": "synthetic-32", "params": {"syntheticSamples": 32}, "budgetSamples": 80,
         "jobs": [{"name": "mini-shared-stage1", "kind": "TuningJob", "stage": "stage1", "path": "shared/stage1",
                   "steps": 4, "globalBatchSize": 16},
                  {"name": "mini-synthetic-32-stage2", "kind": "TuningJob", "stage": "stage2",
                   "path": "synthetic-32/stage2", "steps": 2, "globalBatchSize": 8},
                  {"name": "mini-synthetic-32-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-32/eval"}]},
        {"name": "synthetic-64", "params": {"syntheticSamples": 64}, "budgetSamples": 80,
         "jobs": [{"name": "mini-shared-stage1", "kind": "TuningJob", "stage": "stage1", "path": "shared/stage1",
                   "steps": 4, "globalBatchSize": 16},
                  {"name": "mini-synthetic-64-stage2", "kind": "TuningJob", "stage": "stage2",
                   "path": "synthetic-64/stage2", "steps": 2, "globalBatchSize": 8},
                  {"name": "mini-synthetic-64-eval", "kind": "EvalJob", "stage": "eval", "path": "synthetic-64/eval"}]},
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
    assert summary["metrics"] == ["samples", "loss.final", "pope.f1", "pope.yesRatio", "mme.perception"]
    rows = {arm["name"]: arm["metrics"] for arm in summary["arms"]}
    assert rows["synthetic-0"] == {"samples": 64, "loss.final": 3.0, "pope.f1": 0.40, "pope.yesRatio": 0.90,
                                   "mme.perception": 500.0}
    assert rows["synthetic-64"]["loss.final"] == 2.0  # the arm's last stage


def test_best_per_metric_follows_its_goal_and_ties_all_win():
    best = summarize(MANIFEST, RECORDS)["best"]
    assert best["mme.perception"] == ["synthetic-32"]
    assert best["pope.f1"] == ["synthetic-32", "synthetic-64"]
    assert best["pope.yesRatio"] == ["synthetic-32"]  # closest to 0.5, not the highest
    assert best["loss.final"] == ["synthetic-64"]  # lowest


def test_no_best_with_a_single_value_or_when_every_arm_ties():
    assert best_arms([{"name": "a", "metrics": {"x": 1.0}}, {"name": "b", "metrics": {}}], "x") == []
    assert best_arms([{"name": "a", "metrics": {"x": 0.0}}, {"name": "b", "metrics": {"x": 0.0}}], "x") == []


def test_table_marks_the_best_value_of_each_column_in_bold():
    table = table_markdown(summarize(MANIFEST, RECORDS)).splitlines()
    assert table[0] == "| arm | samples | final loss | pope.f1 | pope.yesRatio | mme.perception |"
    assert table[2] == "| synthetic-0 | 64 | 3.000 | 0.400 | 0.900 | 500.0 |"
    assert table[3] == "| synthetic-32 | 80 | 2.500 | **0.600** | **0.450** | **700.0** |"
    assert table[4] == "| synthetic-64 | 80 | **2.000** | **0.600** | 0.300 | 650.0 |"


def test_unfinished_arms_show_what_they_have():
    records = {**RECORDS, "mini-synthetic-64-eval": {"phase": "Running", "specHash": "h"}}
    del records["mini-synthetic-64-stage2"]
    summary = summarize(MANIFEST, records)
    arm = summary["arms"][2]
    assert not arm["complete"] and arm["metrics"] == {"samples": 80}
    assert [job["phase"] for job in arm["jobs"]] == ["Succeeded", "NotStarted", "Running"]
    assert "| synthetic-64 (incomplete) | 80 | – | – | – | – |" in table_markdown(summary)


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
    assert set(written) == {"report", "summary", "plot:loss", "plot:pope", "plot:mme", "plot:yes-ratio"}
    for name, uri in written.items():
        if name.startswith("plot:"):
            assert open(uri, "rb").read(4) == b"\x89PNG"
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.startswith("# mini: synthetic-scaling") and "![yes-ratio](plots/yes-ratio.png)" in report
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["files"]["plot:loss"] == "plots/loss.png" and summary["best"]["pope.yesRatio"] == ["synthetic-32"]


def test_report_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="vlmtune")
    report_command.register(parser.add_subparsers().add_parser, "report")
    write_run(tmp_path / "run")
    args = parser.parse_args(["report", str(tmp_path / "run")])
    assert args.handler(args) == 0
    assert "| synthetic-32 | 80 | 2.500 | **0.600** |" in capsys.readouterr().out
    args = parser.parse_args(["report", str(tmp_path / "nothing")])
    assert args.handler(args) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value, text", [(0.5, "0.500"), (1536, "1536"), (1_665_280, "1,665,280"), (712.25, "712.2"),
                                         (50.0, "50.0")])
def test_numbers_are_compact(value, text):
    summary = {"metrics": ["x"], "best": {}, "arms": [{"name": "a", "complete": True, "metrics": {"x": value}}]}
    assert table_markdown(summary).splitlines()[2] == f"| a | {text} |"
