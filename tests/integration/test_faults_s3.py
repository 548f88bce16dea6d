"""The same faults with the output on S3 (moto's server on 127.0.0.1, reached as pods reach a store: through the
AWS environment): the driver killed (-9) after a checkpoint, a flipped bit in the newest checkpoint's files. The rerun
takes over the dead driver's lease at once (a process of this host that no longer exists), says the newest
checkpoint does not count, resumes from the one before, and trains every planned sample once."""

from __future__ import annotations

import json
import time

import pytest

from s3_server import running_s3
from test_resume import STEPS, finish, kill_job, planned_steps, start
from vlmtune import storage
from vlmtune.spec.layout import CHECKPOINT_RECORD, LEASE
from vlmtune.train.completion import damage, read_record
from vlmtune.train.ledger import read_steps
from vlmtune.train.metrics import read_history

# Slow: checkpoint integrity and leases on S3 are unit-tested against moto (test_checkpoint_integrity, test_lease);
# this whole run is in `-m slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("moto.server")

BUCKET = "vlmtune-runs"


def wait_for_uri(uri: str, process, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not storage.exists(uri):
        assert process.poll() is None, f"run ended before {uri} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"{uri} did not appear"
        time.sleep(0.5)


def test_a_killed_run_on_s3_with_a_damaged_newest_checkpoint_resumes_exactly(repo, tmp_path, monkeypatch):
    with running_s3(BUCKET):
        out, cache = f"s3://{BUCKET}/runs/smoke", tmp_path / "cache"
        first = start(repo, out, cache)
        wait_for_uri(f"{out}/checkpoints/checkpoint-000006/{CHECKPOINT_RECORD}", first)
        kill_job(first)
        assert json.loads(storage.read_bytes(f"{out}/{LEASE}"))["pid"] == first.pid  # left behind by the kill
        newest = f"{out}/checkpoints/checkpoint-000006"
        assert damage(newest) is None
        flipped = f"{newest}/state/mp_rank_00_model_states.pt"
        data = bytearray(storage.read_bytes(flipped))
        data[len(data) // 2] ^= 0x10
        storage.write_bytes(flipped, bytes(data))
        assert "does not match its sha256" in damage(newest)

        output = finish(start(repo, out, cache))
        (warning,) = [line for line in output.splitlines() if "does not count" in line]
        assert "checkpoint-000006" in warning and "resuming from checkpoint-000003" in warning
        assert read_steps(out) == planned_steps(repo, out, cache, monkeypatch)
        steps = [row["step"] for row in read_history(out)]
        assert steps == sorted(set(steps)) and steps[-1] == STEPS
        assert storage.exists(f"{out}/model/model.safetensors") and not storage.exists(f"{out}/{LEASE}")
        kept = sorted(name for name in storage.list_dir(f"{out}/checkpoints") if name.startswith("checkpoint-0"))
        assert kept == ["checkpoint-000009", "checkpoint-000012"]  # keepCheckpoints 2, after the resume
        assert read_record(f"{out}/checkpoints/checkpoint-000012")["step"] == STEPS
