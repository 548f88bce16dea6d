"""A miniature experiment end to end (two-stage vs mixed, tiny budgets), then the pipeline's memory of it:
a second run skips every job without starting Ray, and a deleted record reruns only that job."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from vlmtune.cli import main

pytestmark = pytest.mark.integration

DEMO = {"perTask": 8, "heldoutPerTask": 2, "imageSize": 32, "seed": 0}
STUDY = {
    "apiVersion": "vlmtune.dev/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "mini"},
    "spec": {
        "study": {"type": "mixed-vs-two-stage"},
        "base": {
            "model": {"preset": "tiny"},
            "training": {
                "learningRate": 1.0e-3,
                "warmupRatio": 0.0,
                "globalBatchSize": 4,
                "microBatchSize": 2,
                "maxLength": 128,
                "logEverySteps": 1,
            },
        },
        "stages": {
            "stage1": {"steps": 3, "data": {"sources": [{"demo": {**DEMO, "tasks": ["shape_name", "shape_color"]}}]}},
            "stage2": {"steps": 1, "data": {"sources": [{"demo": {**DEMO, "seed": 1, "heldoutPerTask": 0}}]}},
        },
        "evaluation": {
            "benchmarks": [{"name": "pope", "demo": DEMO, "limit": 2}],
            "generation": {"maxNewTokens": 2, "batchSize": 4},
        },
        "resources": {"workers": 2},
    },
}
JOBS = ["mini-two-stage-stage1", "mini-two-stage-stage2", "mini-two-stage-eval", "mini-mixed-train", "mini-mixed-eval"]


def ran(printed: str) -> list[str]:
    return [line.split(":")[0] for line in printed.splitlines() if ": running (" in line]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    document = json.loads(json.dumps(STUDY))
    document["spec"]["output"] = {"uri": str(root / "runs" / "mini")}
    path = root / "mini.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, root / "runs" / "mini"


def test_experiment_runs_every_arm_records_every_job_and_reports(study, capsys, monkeypatch, tmp_path_factory):
    path, out = study
    monkeypatch.setenv("VLMTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
    assert main(["run", str(path)]) == 0
    printed = capsys.readouterr().out
    assert ran(printed) == JOBS
    records = {
        name: json.loads((out / folder / "job.json").read_text())
        for name, folder in zip(
            JOBS, ["two-stage/stage1", "two-stage/stage2", "two-stage/eval", "mixed/train", "mixed/eval"]
        )
    }
    assert {record["phase"] for record in records.values()} == {"Succeeded"}
    # Stage 2 trained on the model stage 1 recorded; the mixed arm trained as long as both stages together.
    assert records["mini-two-stage-stage2"]["upstreams"] == {"mini-two-stage-stage1": records[JOBS[0]]["specHash"]}
    assert records["mini-mixed-train"]["metrics"]["steps"] == 3 + 1
    assert all(records[name]["metrics"]["loss.final"] > 0 for name in (JOBS[0], JOBS[1], JOBS[3]))
    assert (out / "two-stage" / "stage2" / "model" / "model.safetensors").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert [arm["name"] for arm in summary["arms"]] == ["two-stage", "mixed"]
    assert all(arm["complete"] and "pope.yesRatio" in arm["metrics"] for arm in summary["arms"])
    assert {"report.md", "summary.json", "experiment.json"} <= {p.name for p in out.iterdir()}
    assert {p.name for p in (out / "plots").iterdir()} == {
        "paper-columns.png",
        "other-metrics.png",
        "loss.png",
        "yes-ratio.png",
    }
    assert "| two-stage | 16 |" in printed and "| mixed | 16 |" in printed  # the table, 4 steps x 4 samples


def test_second_run_skips_every_job_quickly(study, capsys):
    path, out = study
    started = time.perf_counter()
    assert main(["run", str(path)]) == 0
    elapsed = time.perf_counter() - started
    printed = capsys.readouterr().out
    assert ran(printed) == [] and "(0 ran, 5 skipped)" in printed
    assert all(f"{name}: skipped, finished earlier with the same spec" in printed for name in JOBS)
    assert elapsed < 20, f"a fully skipped run took {elapsed:.0f}s"


def test_deleted_record_reruns_only_that_job(study, capsys):
    path, out = study
    (out / "mixed" / "eval" / "job.json").unlink()
    assert main(["run", str(path)]) == 0
    printed = capsys.readouterr().out
    assert ran(printed) == ["mini-mixed-eval"] and "(1 ran, 4 skipped)" in printed
    assert json.loads((out / "mixed" / "eval" / "job.json").read_text())["phase"] == "Succeeded"
