"""Task shards as a training source: records identical to the raw input, checksums enforced."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from vlmtune.data.demo import write_demo_suite
from vlmtune.data.prepare import PrepareConfig, prepare
from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
from vlmtune.data.shards import ShardChecksumError, ShardFormatError, read_manifest, read_shard_records
from vlmtune.data.sources import read_source
from vlmtune.spec import DataSource

PER_TASK = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_suite(root, per_task=PER_TASK, heldout_per_task=0, seed=0, image_size=32)
    return root


@pytest.fixture
def shards(demo: Path, tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    prepare(PrepareConfig(fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out),
                          shard_size_mb=0.002))
    return out


def test_records_read_back_identical_to_the_raw_input(demo, shards):
    raw = json.loads((demo / "annotations_train.json").read_text())
    expected = {f"{item['task_name']}/{item['image']}": item for item in raw}
    records = read_shard_records(str(shards))
    assert len(records) == len(raw) == 13 * PER_TASK
    assert {record["key"] for record in records} == set(expected)
    for record in records:
        item = expected[record["key"]]
        assert record["task"] == item["task_name"] and record["image"] == item["image"]
        assert record["image_bytes"] == (demo / item["image"]).read_bytes()
        assert json.loads(record["conversations"]) == item["conversations"]


def test_sources_read_shards_and_the_pipeline_trains_on_them(shards):
    records, report = read_source(DataSource(uri=str(shards), format="shards"))
    assert len(records) == report.kept == 13 * PER_TASK and report.skipped == {}
    row = Preprocessor(ProcessorConfig("tiny", image_size=32, image_tokens=16, max_length=256)).process(records[0])
    assert row["has_image"] and not row["skip_reason"]


def test_prepare_caps_are_not_reported_as_bad_input(demo, tmp_path):
    out = tmp_path / "capped"
    prepare(PrepareConfig(fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out),
                          max_per_task=2))
    assert read_manifest(str(out))["skipped"]["reasons"] == {"over max-per-task": 13}
    records, report = read_source(DataSource(uri=str(out), format="shards"))
    assert len(records) == 26 and report.skipped == {}


def test_checksum_mismatch_names_the_shard(shards):
    manifest = read_manifest(str(shards))
    victim = shards / manifest["shards"][5]["path"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError, match=manifest["shards"][5]["path"].replace("+", r"\+")) as caught:
        read_shard_records(str(shards))
    assert "re-run prepare" in str(caught.value)
    # The error crosses Ray worker boundaries intact.
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)


def test_a_folder_without_a_manifest_is_not_a_dataset(shards):
    (shards / "manifest.json").unlink()
    with pytest.raises(ShardFormatError, match="vlmtune data prepare"):
        read_shard_records(str(shards))


def test_reading_selected_tasks_only(shards):
    records = read_shard_records(str(shards), tasks=["dot_count"])
    assert {record["task"] for record in records} == {"dot_count"} and len(records) == PER_TASK
