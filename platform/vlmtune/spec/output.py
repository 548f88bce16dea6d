"""`spec.output`: where checkpoints, metrics and the exported model go."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.errors import FieldIssues

MLFLOW_DB = "mlflow.db"
"""The SQLite MLflow store a run keeps in its (local) output folder when no trackingUri is given."""


OUTPUT_SCHEMES = ("s3://", "file://")
"""Where runs can write: object stores through pyarrow's S3 layer, local (or mounted) folders."""


def output_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a run's output folder, or None. Other schemes are refused here: pyarrow would
    accept some (gs://, hdfs://) and then wait forever for credentials or a cluster."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return None
    if f"{scheme}://" not in OUTPUT_SCHEMES:
        return (
            f"{scheme}:// outputs are not supported: use s3://bucket/prefix (any S3-compatible store, "
            "e.g. GCS's S3 interoperability endpoint) or a local folder"
        )
    if scheme == "s3" and not rest.split("/", 1)[0]:
        return f"{uri} names no bucket: use s3://bucket/prefix"
    return None


class MlflowSpec(SpecModel):
    """Log the run to MLflow too: the flattened spec as params, the metrics at every report.
    Needs the `mlflow` extra (`pip install 'vlmtune[mlflow]'`)."""

    tracking_uri: str | None = None
    """MLflow tracking server or store, e.g. http://mlflow.mlops:5000. Default: a SQLite store,
    `mlflow.db` in the output folder (local outputs only; `mlflow ui --backend-store-uri sqlite:///PATH` reads it)."""
    experiment: str = "vlmtune"
    """Experiment the run is logged under; the run is named after the job."""


class OutputSpec(SpecModel):
    """Output location: a local folder or an object-store URI."""

    uri: str
    """Run folder: ./runs/NAME locally, s3://bucket/prefix on clusters."""
    mlflow: MlflowSpec | None = None
    """Also log to MLflow (metrics.jsonl and TensorBoard files under `<uri>/tensorboard/` are always written)."""

    @field_validator("uri")
    @classmethod
    def _a_folder_vlmtune_can_write(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("uri is empty: give a folder such as ./runs/my-job or s3://bucket/runs/my-job")
        problem = output_uri_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/") or value

    @model_validator(mode="after")
    def _default_mlflow_store_needs_a_local_output(self) -> OutputSpec:
        remote = "://" in self.uri and not self.uri.startswith("file://")
        if self.mlflow is not None and self.mlflow.tracking_uri is None and remote:
            problem = (
                f"required when uri is an object store ({self.uri}): the default store is a SQLite file "
                "in a local output folder"
            )
            fix = "set trackingUri to your MLflow server, e.g. http://mlflow.mlops:5000"
            raise FieldIssues([(("mlflow", "trackingUri"), problem, fix)])
        return self
