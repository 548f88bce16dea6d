"""An Experiment on a cluster: one owned child job per generated job, chained by the ordinary job reconcile,
an aggregated status, and the report RayJob once every child succeeded (the API facade is faked)."""

from __future__ import annotations

import argparse
import json
import shlex
from datetime import datetime, timezone

import kopf
import pytest
from operator_docs import FakeClient, experiment_doc, job, live

from vlmtune.cli import report as report_command
from vlmtune.spec.experiment import ARM_LABEL, EXPERIMENT_LABEL
from vlmtune.spec.metadata import PRIORITY_LABEL, QUEUE_LABEL
from vlmtune_operator.experiment import report_rayjob
from vlmtune_operator.handlers import reconcile, reconcile_experiment

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NS = "team-vision"
JOBS = [
    "compare-two-stage-stage1",
    "compare-two-stage-stage2",
    "compare-two-stage-eval",
    "compare-mixed-train",
    "compare-mixed-eval",
]


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def _experiment(client, runtime, status=None, doc=None, generation=1) -> kopf.Patch:
    patch = kopf.Patch()
    reconcile_experiment(
        live(doc or experiment_doc(), uid="exp-uid", generation=generation, status=status),
        patch,
        client,
        runtime,
        now=NOW,
    )
    return patch


def _applied(status: dict, patch: kopf.Patch) -> dict:
    """`status` after the merge patch in `patch` (null removes a key)."""
    merged = dict(status) | dict(patch.status)
    return {key: value for key, value in merged.items() if value is not None}


def _set_status(client, name, **status) -> None:
    client.jobs[(NS, name)]["status"] = status


def test_one_child_per_generated_job_owned_by_the_experiment(client, gpu_runtime):
    patch = _experiment(client, gpu_runtime)
    assert [name for _, name in client.jobs] == JOBS
    for child in client.jobs.values():
        meta = child["metadata"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "vlmtune.dev/v1alpha1",
                "kind": "Experiment",
                "name": "compare",
                "uid": "exp-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"][QUEUE_LABEL] == "tuning" and meta["labels"][PRIORITY_LABEL] == "high"
        assert meta["labels"][EXPERIMENT_LABEL] == "compare" and meta["labels"][ARM_LABEL] in ("two-stage", "mixed")
        assert meta["namespace"] == NS and "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]
    assert client.jobs[(NS, "compare-two-stage-stage2")]["spec"]["model"]["from"]["job"] == "compare-two-stage-stage1"
    assert client.jobs[(NS, "compare-mixed-eval")]["kind"] == "EvalJob"
    assert not client.rayjobs  # each child's own reconcile creates its RayJob
    status = patch.status
    assert (status["phase"], status["progress"], status["counts"]) == ("Pending", "0/5", {"Pending": 5})
    assert [row["name"] for row in status["children"]] == JOBS
    assert [(arm["name"], arm["jobs"]) for arm in status["arms"]] == [("two-stage", "0/3"), ("mixed", "0/2")]


def test_fan_out_is_idempotent(client, gpu_runtime):
    first = _experiment(client, gpu_runtime)
    again = _experiment(client, gpu_runtime, status=dict(first.status))
    assert client.creates == len(JOBS) and dict(again.status) == {}


def test_children_chain_through_the_ordinary_job_reconcile(client, gpu_runtime):
    _experiment(client, gpu_runtime)
    for name in ("compare-two-stage-stage1", "compare-mixed-train"):
        reconcile(client.jobs[(NS, name)], kopf.Patch(), client, gpu_runtime, now=NOW)
    assert sorted(name for _, name in client.rayjobs) == ["tj-compare-mixed-train", "tj-compare-two-stage-stage1"]
    stage2 = client.jobs[(NS, "compare-two-stage-stage2")]
    with pytest.raises(kopf.TemporaryError):  # stage 1 has not succeeded yet
        reconcile(stage2, kopf.Patch(), client, gpu_runtime, now=NOW)
    _set_status(
        client,
        "compare-two-stage-stage1",
        phase="Succeeded",
        artifacts={"model": "s3://runs/compare/two-stage/stage1/model"},
    )
    reconcile(stage2, kopf.Patch(), client, gpu_runtime, now=NOW)
    rayjob = client.rayjobs[(NS, "tj-compare-two-stage-stage2")]
    document = json.loads(shlex.split(rayjob["spec"]["entrypoint"])[3])
    assert document["spec"]["model"]["pretrained"] == "s3://runs/compare/two-stage/stage1/model"
    assert rayjob["metadata"]["labels"][PRIORITY_LABEL] == "high"


def test_status_aggregates_children_and_names_the_failure(client, gpu_runtime):
    first = _applied({}, _experiment(client, gpu_runtime))
    _set_status(client, "compare-two-stage-stage1", phase="Failed", reason="JobFailed", message="CUDA OOM")
    _set_status(client, "compare-two-stage-stage2", phase="Failed", reason="UpstreamFailed", message="upstream")
    _set_status(client, "compare-two-stage-eval", phase="Failed", reason="UpstreamFailed", message="upstream")
    _set_status(client, "compare-mixed-train", phase="Running", progress="3/16 (18%)")
    running = _applied(first, _experiment(client, gpu_runtime, status=first))
    assert (running["phase"], running["reason"]) == ("Running", "ChildFailed")
    assert "compare-two-stage-stage1 (JobFailed: CUDA OOM)" in running["message"]
    assert "compare-two-stage-stage2" not in running["message"].split("still running")[0]  # the cause, not its echo
    assert running["counts"] == {"Failed": 3, "Running": 1, "Pending": 1}
    assert {
        "name": "compare-mixed-train",
        "kind": "TuningJob",
        "stage": "train",
        "phase": "Running",
        "progress": "3/16 (18%)",
    } in running["children"]

    _set_status(client, "compare-mixed-train", phase="Succeeded")
    _set_status(client, "compare-mixed-eval", phase="Succeeded", results={"pope.f1": 0.71})
    done = _applied(running, _experiment(client, gpu_runtime, status=running))
    assert (done["phase"], done["reason"]) == ("Failed", "ChildFailed")
    assert done["message"].startswith("3 of 5 job(s) failed: compare-two-stage-stage1 (JobFailed: CUDA OOM)")
    assert done["arms"] == [
        {"name": "two-stage", "phase": "Failed", "jobs": "0/3"},
        {"name": "mixed", "phase": "Succeeded", "jobs": "2/2", "results": {"pope.f1": 0.71}},
    ]
    assert not client.rayjobs  # no report of a failed experiment


def test_report_rayjob_runs_once_every_child_succeeded(client, gpu_runtime):
    status = _applied({}, _experiment(client, gpu_runtime))
    for name in JOBS:
        _set_status(client, name, phase="Succeeded")
    reporting = _applied(status, _experiment(client, gpu_runtime, status=status))
    assert (reporting["phase"], reporting["stage"], reporting["progress"]) == ("Running", "reporting", "5/5")
    rayjob = client.rayjobs[(NS, "experiment-compare")]
    assert reporting["rayJobName"] == "experiment-compare" and reporting["queue"] == "tuning"
    assert rayjob["metadata"]["ownerReferences"][0]["uid"] == "exp-uid"
    assert "workerGroupSpecs" not in rayjob["spec"]["rayClusterSpec"]  # a head pod only: no GPUs for a report
    command = shlex.split(rayjob["spec"]["entrypoint"])
    assert command[:3] == ["vlmtune", "report", "--spec-json"] and command[4] == "s3://runs/compare"
    assert json.loads(command[3])["metadata"]["name"] == "compare"

    rayjob["status"] = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2026-03-01T13:00:00Z"}
    done = _applied(reporting, _experiment(client, gpu_runtime, status=reporting))
    assert (done["phase"], done["reason"]) == ("Succeeded", "ReportWritten")
    assert done["report"] == "s3://runs/compare/report.md" and len(client.rayjobs) == 1


def test_failed_report_fails_the_experiment(client, gpu_runtime):
    status = _applied({}, _experiment(client, gpu_runtime))
    for name in JOBS:
        _set_status(client, name, phase="Succeeded")
    status = _applied(status, _experiment(client, gpu_runtime, status=status))
    client.rayjobs[(NS, "experiment-compare")]["status"] = {
        "jobDeploymentStatus": "Complete",
        "jobStatus": "FAILED",
        "message": "no experiment.json",
    }
    failed = _applied(status, _experiment(client, gpu_runtime, status=status))
    assert (failed["phase"], failed["reason"], failed["message"]) == ("Failed", "ReportJobFailed", "no experiment.json")


def test_a_child_name_taken_by_another_object_fails_the_experiment(client, gpu_runtime):
    foreign = experiment_doc()  # any job document of that name that the experiment does not own
    client.jobs[(NS, "compare-two-stage-stage1")] = {
        "kind": "TuningJob",
        "metadata": {"name": "compare-two-stage-stage1", "labels": {EXPERIMENT_LABEL: "other"}},
        "spec": foreign["spec"],
    }
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile_experiment(live(experiment_doc(), uid="exp-uid"), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "NameConflict" and "experiment other" in patch.status["message"]


def test_a_deleted_child_is_not_silently_rerun(client, gpu_runtime):
    status = _applied({}, _experiment(client, gpu_runtime))
    del client.jobs[(NS, "compare-mixed-train")]
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile_experiment(live(experiment_doc(), uid="exp-uid", status=status), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "ChildVanished" and (NS, "compare-mixed-train") not in client.jobs


def test_spec_change_after_fan_out_is_reported_not_applied(client, gpu_runtime):
    status = _applied({}, _experiment(client, gpu_runtime))
    edited = experiment_doc()
    edited["spec"]["stages"]["stage1"]["steps"] = 12
    patch = _experiment(client, gpu_runtime, status=status, doc=edited, generation=2)
    [condition] = [c for c in patch.status["conditions"] if c["type"] == "SpecOutOfDate"]
    assert condition["status"] == "True" and "re-apply the experiment" in condition["message"]
    assert client.creates == len(JOBS)
    assert client.jobs[(NS, "compare-two-stage-stage1")]["spec"]["training"]["maxSteps"] == 8


def test_invalid_experiment_fails_with_the_field_path(client, gpu_runtime):
    doc = experiment_doc()
    doc["spec"]["study"]["taskCounts"] = [3]
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile_experiment(live(doc, uid="exp-uid"), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "InvalidSpec" and "spec.study.taskCounts" in patch.status["message"]
    assert not client.jobs


def test_report_entrypoint_writes_the_comparison_from_the_childrens_records(tmp_path, capsys, gpu_runtime):
    """What the report RayJob runs, run here: the children's job.json files (as their RayJobs leave them) and
    no experiment.json, since no `vlmtune run` of the whole experiment ever ran on the cluster."""
    run = tmp_path / "run"
    experiment = job(experiment_doc(output=str(run)))
    headline = {"two-stage": {"pope.f1": 0.62, "pope.yesRatio": 0.48}, "mixed": {"pope.f1": 0.55, "pope.yesRatio": 0.7}}
    for arm, stage, metrics in [
        ("two-stage", "stage1", {"loss.final": 3.0}),
        ("two-stage", "stage2", {"loss.final": 2.5}),
        ("two-stage", "eval", headline["two-stage"]),
        ("mixed", "train", {"loss.final": 2.75}),
        ("mixed", "eval", headline["mixed"]),
    ]:
        (run / arm / stage).mkdir(parents=True)
        (run / arm / stage / "job.json").write_text(
            json.dumps(
                {"phase": "Succeeded", "specHash": "h", "finishedAt": "2026-03-01T12:00:00+00:00", "metrics": metrics}
            )
        )
    command = shlex.split(report_rayjob(experiment, gpu_runtime)["spec"]["entrypoint"])
    parser = argparse.ArgumentParser(prog="vlmtune")
    report_command.register(parser.add_subparsers().add_parser, "report")
    args = parser.parse_args(command[1:])
    assert args.handler(args) == 0
    assert (run / "experiment.json").exists() and (run / "report.md").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert [arm["metrics"]["pope.f1"] for arm in summary["arms"]] == [0.62, 0.55]
    assert summary["best"] == {}  # records without per-question answers: no arm is called best (issue 18)
    assert "two-stage" in capsys.readouterr().out
