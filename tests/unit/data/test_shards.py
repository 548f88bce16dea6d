"""Task shards as a training source: the index and catalog, reading planned rows, integrity while reading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlmtune.data.catalog import Selection, build_catalog
from vlmtune.data.demo import DEMO_TASKS, write_demo_suite
from vlmtune.data.inspect import inspect_dataset
from vlmtune.data.prepare import PrepareConfig, prepare
from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
from vlmtune.data.reader import read_rows
from vlmtune.data.shards import (
    ROW_GROUP_BYTES,
    ShardFormatError,
    ShardIntegrityError,
    check_files,
    iter_shard_records,
    read_manifest,
)

PER_TASK = 3
TASKS = len(DEMO_TASKS)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_suite(root, per_task=PER_TASK, heldout_per_task=0, seed=0, image_size=32)
    return root


@pytest.fixture
def shards(demo: Path, tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    prepare(
        PrepareConfig(
            fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out), shard_size_mb=0.002
        )
    )
    return out


def test_records_read_back_identical_to_the_raw_input(demo, shards):
    raw = json.loads((demo / "annotations_train.json").read_text())
    expected = {f"{item['task_name']}/{item['image']}": item for item in raw}
    records = list(iter_shard_records(str(shards)))
    assert len(records) == len(raw) == TASKS * PER_TASK
    assert {record["key"] for record in records} == set(expected)
    for record in records:
        item = expected[record["key"]]
        assert record["task"] == item["task_name"] and record["image"] == item["image"]
        assert record["image_bytes"] == (demo / item["image"]).read_bytes()
        assert json.loads(record["conversations"]) == item["conversations"]


def test_the_index_lists_every_sample_in_id_order(shards):
    manifest = read_manifest(str(shards))
    index = pq.read_table(shards / "index.parquet")
    records = list(iter_shard_records(str(shards)))
    assert index.column("key").to_pylist() == [record["key"] for record in records]
    assert index.column("task").to_pylist() == [record["task"] for record in records]
    image_tokens = manifest["source"]["image_tokens"]
    assert [t + image_tokens for t in index.column("text_tokens").to_pylist()] == [r["est_tokens"] for r in records]
    assert all(index.column("image").to_pylist())


def test_catalog_holds_small_arrays_and_reads_no_image_bytes(shards):
    catalog = build_catalog([Selection(str(shards))])
    assert catalog.size == catalog.kept() == TASKS * PER_TASK and len(catalog.task_names) == TASKS
    assert catalog.task_codes.dtype == np.int32 and catalog.text_tokens.dtype == np.int32
    per_sample = catalog.task_codes.itemsize + catalog.text_tokens.itemsize + catalog.has_image.itemsize
    assert per_sample + catalog.eligible.itemsize == 10
    assert {task: len(ids) for task, ids in catalog.ids_by_task().items()} == dict.fromkeys(
        catalog.task_names, PER_TASK
    )
    assert catalog.keys(np.arange(catalog.size)) == [r["key"] for r in iter_shard_records(str(shards))]
    assert catalog.lengths(576)[0] == catalog.text_tokens[0] + 576


def test_max_per_task_and_task_filters_select_in_file_order(shards):
    catalog = build_catalog([Selection(str(shards), max_per_task=2, tasks=("dot_count", "text_reading"))])
    chosen = catalog.ids_by_task()
    assert set(chosen) == {"dot_count", "text_reading"} and all(len(ids) == 2 for ids in chosen.values())
    every = build_catalog([Selection(str(shards))]).ids_by_task()
    assert all(np.array_equal(chosen[task], every[task][:2]) for task in chosen)


def test_two_sources_number_their_samples_one_after_the_other(shards):
    catalog = build_catalog([Selection(str(shards)), Selection(str(shards), max_per_task=1)])
    assert catalog.size == 2 * TASKS * PER_TASK and catalog.kept() == TASKS * PER_TASK + TASKS
    assert catalog.keys(np.asarray([0, TASKS * PER_TASK])) == [catalog.keys(np.asarray([0]))[0]] * 2


def test_planned_rows_come_back_in_plan_order_with_repeats(shards):
    catalog = build_catalog([Selection(str(shards))])
    ids = np.asarray([38, 0, 17, 17, 5, 20, 0, 33])
    table = read_rows(catalog.table, ids)
    assert table.column("key").to_pylist() == catalog.keys(ids)
    assert table.column_names == ["key", "task", "image_bytes", "conversations"]
    row = {name: table.column(name)[2].as_py() for name in table.column_names}
    processed = Preprocessor(ProcessorConfig("tiny", image_size=32, image_tokens=16, max_length=256)).process(row)
    assert processed["has_image"] and not processed["skip_reason"]


def test_shards_have_small_row_groups_for_random_reads(demo, tmp_path):
    out = tmp_path / "big"
    prepare(PrepareConfig(fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out)))
    for shard in read_manifest(str(out))["shards"]:
        metadata = pq.read_metadata(out / shard["path"])
        for group in range(metadata.num_row_groups - 1):
            assert metadata.row_group(group).total_byte_size <= 2 * ROW_GROUP_BYTES


def test_prepare_caps_are_not_reported_as_bad_input(demo, tmp_path):
    out = tmp_path / "capped"
    prepare(
        PrepareConfig(fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out), max_per_task=2)
    )
    assert read_manifest(str(out))["skipped"]["reasons"] == {"over max-per-task": TASKS}
    catalog = build_catalog([Selection(str(out))])
    assert catalog.size == 2 * TASKS and catalog.skipped == {}


def flip_a_byte_inside_an_image(shards: Path, shard: dict) -> None:
    path = shards / shard["path"]
    data = bytearray(path.read_bytes())
    first = next(iter_shard_records(str(shards), tasks=[shard["task"]]))  # read before the damage
    offset = bytes(data).find(first["image_bytes"][100:140])
    assert offset > 0
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_caught_by_the_page_checksum_and_names_the_shard(shards):
    manifest = read_manifest(str(shards))
    victim = manifest["shards"][5]
    flip_a_byte_inside_an_image(shards, victim)
    check_files(str(shards), manifest)  # same size: only reading can tell
    catalog = build_catalog([Selection(str(shards))])
    damaged_ids = np.flatnonzero(catalog.task_codes == catalog.task_names.index(victim["task"]))
    with pytest.raises(ShardIntegrityError, match="fails its page checksums") as caught:
        read_rows(catalog.table, damaged_ids)
    assert victim["path"].replace("+", "%2B") in str(caught.value) or victim["path"] in str(caught.value)
    assert "re-run prepare" in str(caught.value)
    # The error crosses Ray worker boundaries intact.
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    damaged = inspect_dataset(str(shards), verify=True)["damaged"]
    assert [entry["path"] for entry in damaged] == [victim["path"]] and "sha256" in damaged[0]["problem"]


def test_missing_and_truncated_shards_are_one_line_before_anything_reads(shards):
    manifest = read_manifest(str(shards))
    (shards / manifest["shards"][0]["path"]).unlink()
    truncated = shards / manifest["shards"][1]["path"]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ShardIntegrityError) as caught:
        check_files(str(shards), manifest)
    message = str(caught.value)
    assert "\n" not in message and "2 of" in message and "is missing" in message and "the manifest says" in message


def test_a_rewritten_shard_of_the_same_size_is_caught_by_its_footer(shards):
    manifest = read_manifest(str(shards))
    victim = shards / manifest["shards"][2]["path"]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0x01  # inside the footer
    victim.write_bytes(bytes(data))
    catalog = build_catalog([Selection(str(shards))])
    start = int(catalog.table.starts[2])
    with pytest.raises(ShardIntegrityError, match="another footer"):
        read_rows(catalog.table, np.asarray([start]))


def test_a_folder_without_a_manifest_is_not_a_dataset(shards):
    (shards / "manifest.json").unlink()
    with pytest.raises(ShardFormatError, match="vlmtune data prepare"):
        build_catalog([Selection(str(shards))])


def test_a_version_1_dataset_asks_for_prepare_again(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    (shards / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(ShardFormatError, match="re-run `vlmtune data prepare`"):
        read_manifest(str(shards))


def test_reading_selected_tasks_only(shards):
    records = list(iter_shard_records(str(shards), tasks=["dot_count"]))
    assert {record["task"] for record in records} == {"dot_count"} and len(records) == PER_TASK


def test_small_images_still_give_row_groups_of_a_few_rows(tmp_path):
    """A byte bound alone would put hundreds of small-image rows in one group; a random read of one would read all."""
    from vlmtune.data.shards import ROW_GROUP_ROWS, ShardWriter

    writer = ShardWriter(str(tmp_path), "tiny_images", max_bytes=1 << 30)
    for index in range(3 * ROW_GROUP_ROWS + 5):
        writer.add(
            {
                "key": f"k{index}",
                "task": "tiny_images",
                "source_id": str(index),
                "image_bytes": b"\xff" * 900,
                "image_name": f"{index}.jpg",
                "conversations": "[]",
                "est_tokens": 70,
            }
        )
    (shard,) = writer.close()
    metadata = pq.read_metadata(tmp_path / shard["path"])
    sizes = [metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)]
    assert sizes == [ROW_GROUP_ROWS] * 3 + [5]
