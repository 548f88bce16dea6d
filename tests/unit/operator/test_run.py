"""The run a RayJob carries is the one `vlmtune run` records: the operator's run hash is the pipeline's spec hash
of the document the RayJob runs (the operator cannot import the runner; this holds the two equal), and a record
belongs to a run only with the same kind, name and hash."""

from __future__ import annotations

import json
import shlex

import pytest
from operator_docs import ALL_JOBS, GPU_RUNTIME, eval_doc, job, stage2_doc, stage_doc

from vlmtune.spec import Experiment, parse_documents
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.run import RUN_HASH_ANNOTATION, UNREAD, Run, belongs, run_artifacts, run_hash, run_of
from vlmtune_operator.runtime import parse_runtime

RUNTIME = parse_runtime(GPU_RUNTIME)


def _documents():
    jobs = [job(stage_doc()), job(stage2_doc()), job(eval_doc())]
    jobs += [loaded for loaded in ALL_JOBS.values() if not isinstance(loaded, Experiment)]
    return jobs


@pytest.mark.parametrize("loaded", _documents(), ids=lambda loaded: loaded.name)
def test_the_run_hash_is_what_vlmtune_run_records(loaded):
    pipeline = pytest.importorskip("vlmtune.runners.pipeline")
    models = {name: f"s3://runs/{name}/model" for name in loaded.upstream_jobs()}
    rayjob = build_rayjob(loaded, RUNTIME, models, "team-vision")
    document = json.loads(shlex.split(rayjob["spec"]["entrypoint"])[3])
    [ran] = parse_documents(json.dumps(document), "--spec-json")  # what `vlmtune run --spec-json` validates
    assert rayjob["metadata"]["annotations"][RUN_HASH_ANNOTATION] == run_hash(document) == pipeline.spec_hash(ran, {})


def test_pausing_does_not_make_another_run():
    paused = stage_doc()
    paused["spec"]["suspend"] = False
    assert (
        build_rayjob(job(paused), RUNTIME)["metadata"]["annotations"]
        == build_rayjob(job(stage_doc()), RUNTIME)["metadata"]["annotations"]
    )


def test_a_record_belongs_to_one_run():
    run = run_of(build_rayjob(job(stage_doc()), RUNTIME), "TuningJob", "visionflan-stage1")
    record = {"kind": "TuningJob", "name": "visionflan-stage1", "specHash": run.spec_hash, "phase": "Running"}
    assert belongs(record, run)
    assert not belongs(record | {"specHash": "older"}, run) and not belongs(record | {"name": "x"}, run)
    assert not belongs(None, run) and not belongs({}, run)
    assert run_of({"metadata": {"annotations": {}}}, "TuningJob", "x") is None  # built before runs were recorded


def test_artifacts_of_a_run():
    run = Run("TuningJob", "x", "h", "s3://runs/x")
    assert run_artifacts(run, UNREAD, succeeded=False)[0] == {
        "checkpoints": "s3://runs/x/checkpoints",
        "metrics": "s3://runs/x/metrics.jsonl",
    }
    assert run_artifacts(run, UNREAD, succeeded=True)[0]["model"] == "s3://runs/x/model"
    recorded = {
        "kind": "TuningJob",
        "name": "x",
        "specHash": "h",
        "phase": "Succeeded",
        "artifacts": {"model": "s3://elsewhere/model", "dataReport": "s3://runs/x/data_report.json"},
    }
    artifacts, note = run_artifacts(run, recorded, succeeded=True)
    assert artifacts["model"] == "s3://elsewhere/model" and "dataReport" not in artifacts and not note
    artifacts, note = run_artifacts(run, recorded | {"phase": "Running"}, succeeded=True)
    assert "model" not in artifacts and "no record of this run" in note
