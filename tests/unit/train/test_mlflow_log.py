"""MLflow logging against a real local store (SQLite in the output folder, as the default is)."""

from __future__ import annotations

import json
import sys

import pytest

from vlmtune.spec import TuningJob
from vlmtune.spec.output import MLFLOW_DB
from vlmtune.train.mlflow_log import MlflowLog, MlflowMissing, flatten, require_mlflow, tracking_uri

mlflow_tracking = pytest.importorskip("mlflow.tracking")


def job(output: str, **mlflow) -> TuningJob:
    return TuningJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": "tiny-stage1"},
            "spec": {
                "model": {"preset": "tiny"},
                "data": {"sources": [{"demo": {"perTask": 4}}]},
                "training": {"learningRate": 1e-3, "globalBatchSize": 8},
                "resources": {"workers": 2},
                "output": {"uri": output, "mlflow": mlflow},
            },
        }
    )


def row(step: int, loss: float) -> dict:
    return {
        "step": step,
        "total_steps": 4,
        "loss": loss,
        "learning_rate": 1e-3,
        "grad_norm": 0.5,
        "samples_per_s": 4.0,
        "tokens_per_s": 400.0,
        "mfu": None,
        "skipped": 1,
        "truncated": 0,
    }


def history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))


def test_params_and_metrics_reach_a_local_store(tmp_path):
    spec = job(str(tmp_path))
    log = MlflowLog(spec, str(tmp_path), resuming=False)
    log.write(row(1, 2.5))
    log.write(row(2, 2.0))
    log.close()
    assert (tmp_path / MLFLOW_DB).is_file()
    client = mlflow_tracking.MlflowClient(tracking_uri(spec.spec.output.mlflow, str(tmp_path)))
    run = client.get_run(log.run_id)
    assert run.info.run_name == "tiny-stage1" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "vlmtune"
    assert run.data.params["training.learningRate"] == "0.001"
    assert json.loads(run.data.params["data.sources"])[0]["demo"]["perTask"] == 4
    assert history(client, log.run_id, "loss") == [(1, 2.5), (2, 2.0)]
    assert history(client, log.run_id, "skipped") == [(1, 1.0), (2, 1.0)]
    assert "mfu" not in run.data.metrics  # null on CPUs


def test_a_failed_attempt_is_marked_failed_until_the_resumed_run_reopens_it(tmp_path):
    spec = job(str(tmp_path))
    first = MlflowLog(spec, str(tmp_path), resuming=False)
    first.write(row(1, 2.5))
    first.close(succeeded=False)
    client = mlflow_tracking.MlflowClient(tracking_uri(spec.spec.output.mlflow, str(tmp_path)))
    assert client.get_run(first.run_id).info.status == "FAILED"
    resumed = MlflowLog(spec, str(tmp_path), resuming=True)
    assert resumed.run_id == first.run_id and client.get_run(first.run_id).info.status == "RUNNING"
    resumed.close()
    assert client.get_run(first.run_id).info.status == "FINISHED"


def test_a_resumed_job_continues_its_run(tmp_path):
    spec = job(str(tmp_path), experiment="stage1")
    first = MlflowLog(spec, str(tmp_path), resuming=False)
    first.write(row(1, 2.5))
    resumed = MlflowLog(spec, str(tmp_path), resuming=True)
    assert resumed.run_id == first.run_id
    resumed.write(row(2, 2.0))
    resumed.close()
    again = MlflowLog(spec, str(tmp_path), resuming=False)  # a fresh run (resume: never) is a new MLflow run
    again.close()
    assert again.run_id != first.run_id
    client = mlflow_tracking.MlflowClient(tracking_uri(spec.spec.output.mlflow, str(tmp_path)))
    assert history(client, first.run_id, "loss") == [(1, 2.5), (2, 2.0)]


def test_flatten_gives_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": True}) == {
        "a.b": "1",
        "a.c.d": "x",
        "e": "[1, 2]",
        "f": "true",
    }


def test_a_missing_mlflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without the extra sees
    with pytest.raises(MlflowMissing, match=r"pip install 'vlmtune\[mlflow\]'"):
        require_mlflow()
