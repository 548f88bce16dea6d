"""Where metric rows go besides metrics.jsonl: TensorBoard event files always, MLflow when the spec asks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from vlmtune.spec import TuningJob


class MetricSink(Protocol):
    def write(self, row: dict) -> None: ...

    def close(self, succeeded: bool = True) -> None: ...


@contextmanager
def metric_sinks(job: TuningJob, output_uri: str, start_step: int, enabled: bool) -> Iterator[list[MetricSink]]:
    """The sinks of a run that starts after `start_step` (none where not `enabled`: only rank 0 writes), closed
    on the way out as succeeded or not (a failed or preempted attempt leaves its MLflow run FAILED)."""
    sinks = open_sinks(job, output_uri, start_step) if enabled else []
    try:
        yield sinks
    except BaseException:
        for sink in sinks:
            sink.close(succeeded=False)
        raise
    for sink in sinks:
        sink.close()


def open_sinks(job: TuningJob, output_uri: str, start_step: int) -> list[MetricSink]:
    """Rank 0's sinks for a run that starts after `start_step` (0: a fresh run).

    Raises:
        MlflowMissing: `spec.output.mlflow` is set and MLflow is not installed.
    """
    from vlmtune.train.tensorboard_log import TensorBoardLog

    sinks: list[MetricSink] = [TensorBoardLog(output_uri, start_step)]
    if job.spec.output.mlflow is not None:
        from vlmtune.train.mlflow_log import MlflowLog

        sinks.append(MlflowLog(job, output_uri, resuming=start_step > 0))
    return sinks
