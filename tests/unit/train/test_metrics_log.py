"""metrics.jsonl is appended, never rewritten: earlier bytes stay as they were, a line cut by a crash or a full
disk is closed off, and readers see each step once, from the run that trained the final model."""

from __future__ import annotations

import pytest

from s3_server import running_s3
from vlmtune import storage
from vlmtune.train.metrics import MetricsLog, effective_rows, history_uri, parse_rows, read_history

BUCKET = "vlmtune-metrics"


def row(step: int, loss: float = 1.0) -> dict:
    return {"step": step, "total_steps": 12, "loss": loss}


def test_rows_are_appended_and_earlier_bytes_never_change(tmp_path):
    out = str(tmp_path)
    log = MetricsLog(out)
    log.append(row(1))
    first = (tmp_path / "metrics.jsonl").read_bytes()
    log.append(row(2))
    assert (tmp_path / "metrics.jsonl").read_bytes().startswith(first)
    assert [r["step"] for r in read_history(out)] == [1, 2]


def test_a_line_cut_by_a_crash_is_closed_off_and_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # killed (or a full disk) mid-write
    MetricsLog(str(tmp_path), resumed_from=1).append(row(2))
    assert path.read_bytes().startswith(b'{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    assert [r["step"] for r in read_history(str(tmp_path))] == [1, 2]


def test_a_resumed_run_replaces_the_rows_after_its_checkpoint():
    killed = [row(1), row(2), row(4), row(6), row(8)]  # checkpoint at 6; killed after 8
    resumed = [{**row(8, 0.5), "resumed_from": 6}, {**row(10, 0.4), "resumed_from": 6}]
    history = effective_rows(killed + resumed)
    assert [(r["step"], r["loss"]) for r in history] == [(1, 1.0), (2, 1.0), (4, 1.0), (6, 1.0), (8, 0.5), (10, 0.4)]


def test_resumed_twice_from_the_same_checkpoint():
    rows = [
        row(2),
        row(4),
        {**row(6, 0.9), "resumed_from": 4},
        {**row(8, 0.9), "resumed_from": 4},
        {**row(6, 0.5), "resumed_from": 4},
    ]
    assert [(r["step"], r["loss"]) for r in effective_rows(rows)] == [(2, 1.0), (4, 1.0), (6, 0.5)]


def test_a_resume_from_an_earlier_checkpoint_drops_everything_after_it():
    rows = [row(2), row(4), row(6), {**row(8), "resumed_from": 6}, {**row(4, 0.1), "resumed_from": 3}]
    assert [r["step"] for r in effective_rows(rows)] == [2, 4]


def test_parse_rows_skips_what_is_not_a_row():
    assert [r["step"] for r in parse_rows(b'garbage\n[1]\n{"loss": 1}\n{"step": 3}\n\xff\xfe\n')] == [3]


@pytest.mark.integration
def test_appending_on_s3_keeps_everything_written_before():
    with running_s3(BUCKET):
        out = f"s3://{BUCKET}/run"
        storage.write_bytes(history_uri(out), b'{"step": 1, "loss": 2.0}\n{"step": 2')
        log = MetricsLog(out, resumed_from=1)
        log.append(row(2))
        log.append(row(3))
        data = storage.read_bytes(history_uri(out))
        assert data.startswith(b'{"step": 1, "loss": 2.0}\n{"step": 2\n')
        assert [r["step"] for r in read_history(out)] == [1, 2, 3]
