"""Task shards on a real S3-compatible server (moto's server mode on 127.0.0.1), outage included."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from s3_server import running_s3
from vlmtune import storage
from vlmtune.data.catalog import Selection, build_catalog
from vlmtune.data.demo import DEMO_TASKS, write_demo_suite
from vlmtune.data.inspect import inspect_dataset
from vlmtune.data.prepare import PrepareConfig, prepare
from vlmtune.data.reader import read_rows
from vlmtune.data.shards import iter_shard_records, read_manifest

pytestmark = pytest.mark.integration
pytest.importorskip("moto.server")

BUCKET = "vlmtune-data"
PER_TASK = 2
TASKS = len(DEMO_TASKS)


@pytest.fixture(scope="module")
def s3():
    with running_s3(BUCKET) as server:
        yield server


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_suite(root, per_task=PER_TASK, heldout_per_task=0, seed=0, image_size=32)
    return root


@pytest.fixture(scope="module")
def s3_shards(s3, demo) -> str:
    """The demo suite uploaded to s3, prepared from s3 into shards on s3 (several per task)."""
    storage.upload_dir(demo, f"s3://{BUCKET}/raw/demo")
    out = f"s3://{BUCKET}/shards"
    config = PrepareConfig(
        fmt="vision-flan",
        annotations=f"s3://{BUCKET}/raw/demo/annotations_train.json",
        out=out,
        shard_size_mb=0.001,
        io_threads=4,
    )
    assert not prepare(config).up_to_date
    assert prepare(config).up_to_date  # the fingerprint comes from an s3 listing: still no work
    return out


def test_prepare_on_s3_reads_back_planned_rows_with_ranged_reads(s3_shards, demo, tmp_path):
    manifest = read_manifest(s3_shards)
    assert manifest["instances"] == TASKS * PER_TASK and len(manifest["shards"]) == TASKS * PER_TASK
    catalog = build_catalog([Selection(s3_shards)])
    assert catalog.size == TASKS * PER_TASK and catalog.skipped == {}
    local = tmp_path / "local"
    prepare(
        PrepareConfig(
            fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(local), shard_size_mb=0.001
        )
    )
    ids = np.random.default_rng(0).permutation(catalog.size)
    from_s3 = read_rows(catalog.table, ids).to_pylist()
    from_local = read_rows(build_catalog([Selection(str(local))]).table, ids).to_pylist()
    assert from_s3 == from_local and [row["key"] for row in from_s3] == catalog.keys(ids)
    assert inspect_dataset(s3_shards)["instances"] == TASKS * PER_TASK


def test_planned_reads_survive_a_short_outage(s3, s3_shards):
    catalog = build_catalog([Selection(s3_shards)])
    ids = np.arange(catalog.size)[::-1]
    expected = catalog.keys(ids)
    s3.stop()
    restart = threading.Timer(1.5, s3.start)
    restart.start()
    started = time.monotonic()
    keys = read_rows(catalog.table, ids).column("key").to_pylist()
    restart.join()
    assert time.monotonic() - started >= 1.0 and keys == expected


def test_reading_survives_a_short_outage(s3, s3_shards):
    expected = [record["key"] for record in iter_shard_records(s3_shards)]
    next_shard = storage.join(s3_shards, read_manifest(s3_shards)["shards"][1]["path"])
    stream = iter_shard_records(s3_shards)
    keys = [next(stream)["key"]]  # manifest and first shard read; the stream is mid-way
    s3.stop()
    with pytest.raises(OSError):  # a read without our retries fails: the outage is real
        _read_once(next_shard)
    restart = threading.Timer(1.5, s3.start)
    restart.start()
    started = time.monotonic()
    keys += [record["key"] for record in stream]
    restart.join()
    assert time.monotonic() - started >= 1.0  # the stream waited for the server instead of failing
    assert keys == expected  # nothing repeated, nothing skipped


def _read_once(uri: str) -> bytes:
    fs, path = storage.resolve(uri)
    with fs.open_input_file(path) as handle:
        return handle.read()
