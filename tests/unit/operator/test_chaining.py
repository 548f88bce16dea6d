"""Chaining: a `from` job starts only on its upstream's recorded model, and fails fast when it never will."""

from __future__ import annotations

import pytest
from operator_docs import eval_doc, job, stage2_doc, stage_doc

from vlmtune_operator.chaining import artifact_uris, expected_models, resolve_document, resolve_upstreams

MODEL = "s3://runs/visionflan-stage1/model"
UPSTREAM = "visionflan-stage1"


@pytest.mark.parametrize(
    "status, state, message",
    [
        (None, "wait", "visionflan-stage1 (not created yet)"),
        ({}, "wait", "visionflan-stage1 (not created yet)"),
        ({"phase": "Queued"}, "wait", "visionflan-stage1 (Queued)"),
        ({"phase": "Running", "artifacts": {"checkpoints": "s3://x"}}, "wait", "visionflan-stage1 (Running)"),
        ({"phase": "Suspended"}, "wait", "visionflan-stage1 (Suspended)"),
        ({"phase": "Failed", "reason": "JobFailed"}, "failed", "upstream job 'visionflan-stage1' failed (JobFailed)"),
        ({"phase": "Succeeded", "artifacts": {}}, "failed", "succeeded but recorded no model artifact"),
        ({"phase": "Succeeded", "artifacts": {"model": MODEL}}, "ready", ""),
    ],
)
def test_resolution_follows_the_upstream_status(status, state, message):
    resolution = resolve_upstreams(job(stage2_doc()), {UPSTREAM: status})
    assert resolution.state == state and message in resolution.message
    assert resolution.models == ({UPSTREAM: MODEL} if state == "ready" else {})


def test_jobs_without_upstream_are_ready():
    assert resolve_upstreams(job(stage_doc()), {}).state == "ready"


def test_resolve_document_swaps_the_reference_for_the_model_without_mutating():
    document = job(stage2_doc()).to_doc()
    resolved = resolve_document(document, {UPSTREAM: MODEL})
    assert resolved["spec"]["model"]["pretrained"] == MODEL and "from" not in resolved["spec"]["model"]
    assert document["spec"]["model"]["from"] == {"job": UPSTREAM, "checkpoint": "last"}
    with pytest.raises(KeyError):
        resolve_document(document, {})


def test_artifact_layout_under_the_output_uri():
    assert artifact_uris("TuningJob", "s3://runs/a/", succeeded=False) == {
        "checkpoints": "s3://runs/a/checkpoints",
        "metrics": "s3://runs/a/metrics.jsonl",
    }
    assert artifact_uris("TuningJob", "s3://runs/a", succeeded=True)["model"] == "s3://runs/a/model"
    assert artifact_uris("EvalJob", "s3://runs/e", succeeded=True) == {"metrics": "s3://runs/e/results.json"}


def test_expected_models_predict_what_success_records():
    assert expected_models([job(stage_doc()), job(stage2_doc())]) == {
        "visionflan-stage1": MODEL,
        "visionflan-stage2": "s3://runs/visionflan-stage2/model",
    }


def test_eval_job_chains_from_a_tuning_job_but_nothing_chains_from_an_eval():
    evaluation = job(eval_doc())
    ready = resolve_upstreams(evaluation, {UPSTREAM: {"phase": "Succeeded", "artifacts": {"model": MODEL}}})
    assert ready.state == "ready"
    assert resolve_document(evaluation.to_doc(), ready.models)["spec"]["model"] == {"pretrained": MODEL}
    assert "eval-stage1" not in expected_models([evaluation])
    after_eval = job(stage2_doc(upstream="eval-stage1"))
    outcome = resolve_upstreams(
        after_eval, {"eval-stage1": {"phase": "Succeeded", "artifacts": {"metrics": "s3://runs/e/results.json"}}}
    )
    assert outcome.state == "failed" and "recorded no model artifact" in outcome.message
