"""`spec.training.checkpointLayers` and `spec.output.mlflow`: what loads, and the errors that name the field."""

from __future__ import annotations

import yaml
from spec_issues import raised_issue

from vlmtune.spec import load_jobs


def load(tmp_path, training: dict | None = None, output: dict | None = None):
    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "metrics"},
        "spec": {
            "model": {"preset": "tiny"},
            "data": {"sources": [{"demo": {"perTask": 4}}]},
            "training": {"globalBatchSize": 8, **(training or {})},
            "output": {"uri": "./runs/metrics", **(output or {})},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_jobs([path])


def issue_at(tmp_path, path: str, **sections):
    return raised_issue(path, load, tmp_path, **sections)


def test_checkpoint_layers_default_to_all(tmp_path):
    (job,) = load(tmp_path, training={"gradientCheckpointing": True})
    assert job.spec.training.checkpoint_layers is None
    (job,) = load(tmp_path, training={"gradientCheckpointing": True, "checkpointLayers": 8})
    assert job.spec.training.checkpoint_layers == 8 and job.to_doc()["spec"]["training"]["checkpointLayers"] == 8


def test_checkpoint_layers_need_checkpointing_and_a_positive_count(tmp_path):
    issue = issue_at(tmp_path, "spec.training.checkpointLayers", training={"checkpointLayers": 8})
    assert "gradientCheckpointing is off" in issue.message and "gradientCheckpointing: true" in issue.fix
    issue_at(
        tmp_path, "spec.training.checkpointLayers", training={"gradientCheckpointing": True, "checkpointLayers": 0}
    )


def test_mlflow_defaults_to_a_local_store_and_the_vlmtune_experiment(tmp_path):
    (job,) = load(tmp_path, output={"mlflow": {}})
    assert job.spec.output.mlflow.tracking_uri is None and job.spec.output.mlflow.experiment == "vlmtune"
    (job,) = load(tmp_path)
    assert job.spec.output.mlflow is None


def test_object_store_outputs_need_a_tracking_uri(tmp_path):
    issue = issue_at(tmp_path, "spec.output.mlflow.trackingUri", output={"uri": "s3://runs/metrics", "mlflow": {}})
    assert "object store" in issue.message and "http://" in issue.fix
    (job,) = load(tmp_path, output={"uri": "s3://runs/metrics", "mlflow": {"trackingUri": "http://mlflow:5000"}})
    assert job.spec.output.mlflow.tracking_uri == "http://mlflow:5000"
