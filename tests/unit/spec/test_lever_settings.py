"""The throughput levers of `spec.training`: defaults keep the plain path; errors name the field and the fix."""

from __future__ import annotations

import pytest
import yaml
from spec_issues import raised_issue

from vlmtune.spec import load_jobs


def load(tmp_path, training: dict | None = None):
    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "levers"},
        "spec": {
            "model": {"preset": "tiny"},
            "data": {"sources": [{"demo": {"perTask": 4}}]},
            "training": {"globalBatchSize": 8, **(training or {})},
            "output": {"uri": "./runs/levers"},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_jobs([path])


def test_defaults_are_the_plain_path(tmp_path):
    from vlmtune.train.levers import Levers, levers_of

    (job,) = load(tmp_path)
    training = job.spec.training
    assert not (
        training.chunked_loss or training.compile_layers or training.pack_samples or training.offload_activations
    )
    assert training.attention.value == "auto" and levers_of(training) == Levers()


def test_every_lever_loads_and_round_trips(tmp_path):
    from vlmtune.train.levers import Levers, levers_of

    fields = {
        "chunkedLoss": True,
        "compileLayers": True,
        "packSamples": True,
        "offloadActivations": True,
        "attention": "flex_attention",
        "gradientCheckpointing": True,
        "checkpointLayers": 8,
    }
    (job,) = load(tmp_path, fields)
    assert levers_of(job.spec.training) == Levers(
        chunked_loss=True, pack=True, offload_activations=True, compile_layers=True, attention="flex_attention"
    )
    written = job.to_doc()["spec"]["training"]
    assert {key: written[key] for key in fields} == fields


def test_compiled_layers_refuse_zero3(tmp_path):
    issue = raised_issue(
        "spec.training.compileLayers", load, tmp_path, {"compileLayers": True, "deepspeed": {"zeroStage": 3}}
    )
    assert "zeroStage 3" in issue.message and "zeroStage 2" in issue.fix and "compileLayers: false" in issue.fix


def test_offloading_needs_layers_that_keep_their_activations(tmp_path):
    issue = raised_issue(
        "spec.training.offloadActivations", load, tmp_path, {"offloadActivations": True, "gradientCheckpointing": True}
    )
    assert "recomputes every decoder layer" in issue.message and "checkpointLayers" in issue.fix
    (job,) = load(tmp_path, {"offloadActivations": True})  # no checkpointing: every layer offloads
    assert job.spec.training.offload_activations


def test_an_unknown_attention_kernel_is_refused(tmp_path):
    issue = raised_issue("spec.training.attention", load, tmp_path, {"attention": "flash"})
    assert "flash_attention_2" in str(issue)


@pytest.mark.parametrize("field", ["chunkedLoss", "packSamples"])
def test_levers_are_booleans(tmp_path, field):
    raised_issue(f"spec.training.{field}", load, tmp_path, {field: "often"})
