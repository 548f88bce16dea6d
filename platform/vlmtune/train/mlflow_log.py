"""MLflow logging of a run when `spec.output.mlflow` asks for it (the optional `mlflow` extra).

The flattened spec goes in as params once; every metric row as metrics at its step. Without a
trackingUri the store is a SQLite file in the output folder: MLflow 3 keeps its plain-file store
in maintenance mode and refuses it by default, and a file beside metrics.jsonl keeps the run
self-contained. A resumed run continues the MLflow run of the same job and output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vlmtune import storage
from vlmtune.spec import MlflowSpec, TuningJob
from vlmtune.spec.output import MLFLOW_DB
from vlmtune.train.metrics import SCALARS

INSTALL = "pip install 'vlmtune[mlflow]'"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call


class MlflowMissing(ImportError):
    """`spec.output.mlflow` is set but MLflow is not installed."""

    def __init__(self):
        super().__init__(
            f"spec.output.mlflow is set but MLflow is not installed: {INSTALL}, or remove spec.output.mlflow"
        )

    def __reduce__(self):
        return (MlflowMissing, ())


def require_mlflow() -> None:
    """Raises MlflowMissing, naming the extra to install, when MLflow cannot be imported."""
    try:
        import mlflow  # noqa: F401
    except ImportError as err:
        raise MlflowMissing() from err


def tracking_uri(settings: MlflowSpec, output_uri: str) -> str:
    if settings.tracking_uri:
        return settings.tracking_uri
    return "sqlite:///" + str(Path(storage.absolute(output_uri)) / MLFLOW_DB)


def flatten(doc: dict, prefix: str = "") -> dict[str, str]:
    """A nested spec document as dotted keys (`training.learningRate`); lists as JSON text."""
    flat: dict[str, str] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


class MlflowLog:
    """One job's MLflow run; rank 0 writes it."""

    def __init__(self, job: TuningJob, output_uri: str, resuming: bool):
        """Args:
            resuming: the run continues from a checkpoint; continue the job's earlier MLflow run.

        Raises:
            MlflowMissing: MLflow is not installed.
        """
        require_mlflow()
        from mlflow.tracking import MlflowClient

        settings = job.spec.output.mlflow
        self._client = MlflowClient(tracking_uri(settings, output_uri))
        found = self._client.get_experiment_by_name(settings.experiment)
        experiment = found.experiment_id if found else self._client.create_experiment(settings.experiment)
        tags = {"vlmtune.job": job.name, "vlmtune.output": output_uri}
        earlier = self._earlier_run(experiment, tags) if resuming else None
        if earlier is not None:
            self.run_id = earlier
            self._client.update_run(earlier, status="RUNNING")
            return
        self.run_id = self._client.create_run(experiment, tags=tags, run_name=job.name).info.run_id
        self._log_params(flatten(job.to_doc()["spec"]))

    def write(self, row: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, float(row[name]), now, row["step"]) for name in SCALARS if row.get(name) is not None]
        self._client.log_batch(self.run_id, metrics=metrics)

    def close(self, succeeded: bool = True) -> None:
        # A failed or preempted attempt is FAILED until a resumed run of the job reopens it.
        self._client.set_terminated(self.run_id, status="FINISHED" if succeeded else "FAILED")

    def _earlier_run(self, experiment: str, tags: dict[str, str]) -> str | None:
        query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        runs = self._client.search_runs([experiment], query, max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0].info.run_id if runs else None

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value[:MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
        for start in range(0, len(items), BATCH):
            self._client.log_batch(self.run_id, params=items[start : start + BATCH])
