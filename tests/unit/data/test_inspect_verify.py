"""Damaged shard sets are reported, not fatal: `data inspect` names missing, truncated and unreadable shards,
`--verify` also finds flipped bits; `data prepare` fails when it keeps nothing or skips too much."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmtune.cli import main
from vlmtune.data.demo import write_demo_suite
from vlmtune.data.inspect import inspect_dataset, prepare_problem
from vlmtune.data.prepare import PrepareConfig, prepare


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_suite(root, per_task=3, heldout_per_task=0, seed=0, image_size=32)
    return root


@pytest.fixture
def shards(demo, tmp_path) -> Path:
    out = tmp_path / "shards"
    prepare(
        PrepareConfig(
            fmt="vision-flan", annotations=str(demo / "annotations_train.json"), out=str(out), shard_size_mb=0.002
        )
    )
    return out


def shard_paths(out: Path) -> list[Path]:
    return [out / shard["path"] for shard in json.loads((out / "manifest.json").read_text())["shards"]]


def test_a_healthy_set_verifies(shards, capsys):
    assert main(["data", "inspect", str(shards), "--verify"]) == 0
    assert "damaged shards: 0 of" in capsys.readouterr().out


def test_missing_truncated_and_flipped_shards_are_named(shards, capsys):
    missing, truncated, flipped, *_ = shard_paths(shards)
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0x01
    flipped.write_bytes(bytes(data))

    quick = {entry["path"]: entry["problem"] for entry in inspect_dataset(str(shards))["damaged"]}
    assert quick[str(missing.relative_to(shards))] == "missing"
    assert "bytes, the manifest says" in quick[str(truncated.relative_to(shards))]

    verified = {entry["path"]: entry["problem"] for entry in inspect_dataset(str(shards), verify=True)["damaged"]}
    assert "sha256 does not match" in verified[str(flipped.relative_to(shards))] and len(verified) == 3

    assert main(["data", "inspect", str(shards), "--verify"]) == 1
    captured = capsys.readouterr()
    assert "damaged shards: 3 of" in captured.out and captured.err.strip().count("\n") == 0
    assert "3 damaged shard(s)" in captured.err


def test_an_unreadable_shard_of_the_right_size_is_reported(shards):
    first = shard_paths(shards)[0]
    first.write_bytes(b"\0" * first.stat().st_size)  # same size, not Parquet any more
    (entry,) = inspect_dataset(str(shards))["damaged"]
    assert entry["problem"].startswith("unreadable Parquet")


@pytest.mark.parametrize("content, expected", [(None, "does not exist"), ("{not json", "not valid JSON")])
def test_no_or_a_broken_manifest_is_one_line(tmp_path, capsys, content, expected):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    assert main(["data", "inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_prepare_that_keeps_nothing_fails(demo, tmp_path, capsys):
    annotations = json.loads((demo / "annotations_train.json").read_text())
    for record in annotations:
        record["image"] = "nowhere/" + record["image"]
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    code = main(
        [
            "data",
            "prepare",
            "--format",
            "vision-flan",
            "--annotations",
            str(tmp_path / "a.json"),
            "--images",
            str(demo),
            "--out",
            str(tmp_path / "out"),
            "--max-skipped-fraction",
            "1",
        ]
    )
    assert code == 1 and "kept no instance" in capsys.readouterr().err


def test_the_skip_limit():
    manifest = {"instances": 90, "skipped": {"reasons": {"image not found": 8, "over max-per-task": 500}}}
    assert prepare_problem(manifest, 0.1) is None  # 8 of 98; records over the cap were a choice
    assert "skipped 8 of 98 records (8.2%)" in prepare_problem(manifest, 0.05)
