"""TensorBoard event files, read back with TensorBoard's own reader: local and S3 outputs, resumed runs."""

from __future__ import annotations

import pytest

from s3_server import running_s3
from vlmtune import storage
from vlmtune.spec.layout import TENSORBOARD as FOLDER
from vlmtune.train.tensorboard_log import TensorBoardLog, scalar_tag

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(folder, name: str) -> list[tuple[int, float]]:
    """(step, value) pairs as TensorBoard shows them (orphaned steps of a restarted run purged)."""
    accumulator = event_accumulator.EventAccumulator(str(folder))
    accumulator.Reload()
    if scalar_tag(name) not in accumulator.Tags()["scalars"]:
        return []
    return [(event.step, event.value) for event in accumulator.Scalars(scalar_tag(name))]


def row(step: int, loss: float, mfu: float | None = None) -> dict:
    return {
        "step": step,
        "loss": loss,
        "learning_rate": 1e-3,
        "grad_norm": 0.5,
        "samples_per_s": 4.0,
        "tokens_per_s": 400.0,
        "mfu": mfu,
        "skipped": 0,
        "truncated": 0,
        "total_steps": 6,
    }


def test_every_report_reaches_the_output_folder(tmp_path):
    log = TensorBoardLog(str(tmp_path), start_step=0)
    log.write(row(1, 2.5))
    # Uploaded at each report, not only at the end: a killed run keeps what it reported.
    assert scalars(tmp_path / FOLDER, "loss") == [(1, 2.5)]
    log.write(row(2, 2.25))
    log.close()
    assert scalars(tmp_path / FOLDER, "loss") == [(1, 2.5), (2, 2.25)]
    assert scalars(tmp_path / FOLDER, "tokens_per_s") == [(1, 400.0), (2, 400.0)]
    assert scalars(tmp_path / FOLDER, "mfu") == []  # null on CPUs: not written as a number


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    first = TensorBoardLog(str(tmp_path), start_step=0)
    for step in range(1, 6):  # killed after reporting step 5; its last checkpoint was at step 3
        first.write(row(step, 10.0 - step, mfu=0.25))
    second = TensorBoardLog(str(tmp_path), start_step=3)
    for step in range(4, 7):
        second.write(row(step, 100.0 + step, mfu=0.5))
    second.close()
    assert len(list((tmp_path / FOLDER).iterdir())) == 2  # one event file per run
    assert scalars(tmp_path / FOLDER, "loss") == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 104.0), (5, 105.0), (6, 106.0)]
    assert [step for step, _ in scalars(tmp_path / FOLDER, "mfu")] == [1, 2, 3, 4, 5, 6]


@pytest.fixture
def s3_output():
    pytest.importorskip("moto.server")
    with running_s3("runs"):
        yield "s3://runs/job"


def test_object_store_outputs_get_the_event_file_too(s3_output, tmp_path):
    log = TensorBoardLog(s3_output, start_step=0)
    log.write(row(1, 2.5))
    log.write(row(2, 2.0))
    log.close()
    local = storage.download_dir(storage.join(s3_output, FOLDER), tmp_path / "downloaded")
    assert scalars(local, "loss") == [(1, 2.5), (2, 2.0)]
