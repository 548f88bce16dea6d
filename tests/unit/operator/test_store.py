"""The operator's read-only store reader on a local folder and on a real S3-compatible server (moto's server
mode on 127.0.0.1): bounded tail reads of metrics.jsonl, job.json/results.json, absent files, a dead endpoint."""

from __future__ import annotations

import json

import pytest

from s3_server import S3Server, running_s3
from vlmtune_operator.figures import figures
from vlmtune_operator.store import StoreReader, StoreUnavailable, read_run

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")

BUCKET = "runs"


@pytest.fixture(scope="module")
def s3():
    """moto's S3, reached the way the operator pod does: through the AWS environment variables."""
    with running_s3(BUCKET) as server:
        yield boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")


def _history(steps: int, total: int) -> bytes:
    rows = [
        {
            "step": step,
            "loss": 10.0 / step,
            "learning_rate": 1e-4,
            "tokens_per_s": 1000.0 + step,
            "samples_per_s": 4.0,
            "total_steps": total,
            "mfu": 0.3,
        }
        for step in range(1, steps + 1)
    ]
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()


def test_local_folder_tail_is_bounded(tmp_path):
    history = _history(2000, 4000)  # ~270 kB: more than the reader's tail
    (tmp_path / "metrics.jsonl").write_bytes(history)
    reader = StoreReader(tail_bytes=4096)
    tail = reader.read_tail(str(tmp_path / "metrics.jsonl"), reader.tail_bytes)
    assert len(tail) == 4096 and history.endswith(tail)
    files, whole = read_run(reader, "TuningJob", str(tmp_path))
    assert not whole and files.record is None
    found = figures("TuningJob", files, None, whole)
    assert found.progress == "2000/4000 (50%)" and found.metrics["tokensPerSecond"] == 3000.0


def test_local_folder_absent_and_partial(tmp_path):
    reader = StoreReader()
    files, whole = read_run(reader, "TuningJob", str(tmp_path / "not-started"))
    assert files.metrics_tail is None and files.record is None and whole
    (tmp_path / "metrics.jsonl").write_bytes(_history(3, 8) + b'{"step": 4, "lo')
    (tmp_path / "job.json").write_text('{"phase": "Succ')  # being written
    files, whole = read_run(reader, "TuningJob", f"file://{tmp_path}")
    assert files.record is None and whole
    assert figures("TuningJob", files, None, whole).progress == "3/8 (37%)"


def test_s3_run_files(s3):
    s3.put_object(Bucket=BUCKET, Key="exp/stage1/metrics.jsonl", Body=_history(300, 1000))
    s3.put_object(Bucket=BUCKET, Key="exp/stage1/job.json", Body=json.dumps({"phase": "Running"}).encode())
    reader = StoreReader(tail_bytes=2048)
    files, whole = read_run(reader, "TuningJob", f"s3://{BUCKET}/exp/stage1/")
    assert not whole and len(files.metrics_tail) == 2048 and files.record == {"phase": "Running"}
    found = figures("TuningJob", files, None, whole)
    assert found.progress == "300/1000 (30%)" and found.metrics["step"] == 300 and found.metrics["mfu"] == 0.3

    # A rewrite of the file (the trainer rewrites it at each report) is seen at once: no stale listing cache.
    s3.put_object(Bucket=BUCKET, Key="exp/stage1/metrics.jsonl", Body=_history(310, 1000))
    assert (
        figures("TuningJob", *read_run(reader, "TuningJob", f"s3://{BUCKET}/exp/stage1")[:1], None, False).progress
        == "310/1000 (31%)"
    )


def test_s3_eval_results_and_absent_objects(s3):
    headline = {"pope.f1": 0.75, "pope.yesRatio": 0.5}
    s3.put_object(Bucket=BUCKET, Key="exp/eval/results.json", Body=json.dumps({"headline": headline}).encode())
    reader = StoreReader()
    files, _ = read_run(reader, "EvalJob", f"s3://{BUCKET}/exp/eval")
    assert files.record is None and figures("EvalJob", files, None, True).results == headline
    assert reader.read_json(f"s3://{BUCKET}/exp/nothing/job.json") is None
    assert reader.read_tail(f"s3://{BUCKET}-missing/metrics.jsonl") is None  # no bucket: nothing written yet


def test_unreachable_store_is_reported_not_raised_raw(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", S3Server().endpoint)  # a free port nothing listens on
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(StoreUnavailable, match="s3://runs/x/job.json"):
        StoreReader().read_json("s3://runs/x/job.json")
    with pytest.raises(StoreUnavailable, match="only local paths and s3://"):
        StoreReader().read_json("gs://runs/x/job.json")
