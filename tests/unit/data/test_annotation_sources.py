"""Annotation sources for `data prepare`: streamed JSON / JSON Lines, and Hugging Face `datasets` datasets
(save_to_disk folders, local Hub snapshots, hf:// through the Hub cache with offline mode honoured)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmtune.cli import main
from vlmtune.data.annotations import AnnotationError, iter_hf_records, iter_json_records
from vlmtune.data.prepare import PrepareConfig, prepare
from vlmtune.data.shards import iter_shard_records

datasets = pytest.importorskip("datasets")


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def rows(count: int = 6) -> list[dict]:
    return [
        {
            "id": str(i % 3),
            "image": {"bytes": jpeg(i), "path": f"img/{i}.jpg"},
            "task_name": f"task{i % 2}",
            "conversations": [{"from": "human", "value": f"<image>\nQuestion {i}?"}, {"from": "gpt", "value": "yes"}],
        }
        for i in range(count)
    ]


def hf_dataset(count: int = 6):
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "task_name": datasets.Value("string"),
            "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
        }
    )
    return datasets.Dataset.from_list(rows(count), features=features)


def test_json_list_and_json_lines_stream_the_same_records(tmp_path):
    records = [{"id": i, "text": "é" * (i % 50)} for i in range(500)]
    (tmp_path / "list.json").write_text(json.dumps(records, ensure_ascii=False))
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert list(iter_json_records(str(tmp_path / "list.json"), chunk_chars=37)) == records
    assert list(iter_json_records(str(tmp_path / "lines.jsonl"), chunk_chars=37)) == records


@pytest.mark.parametrize(
    "text,problem",
    [
        ('[{"a": 1},]', "record 1 is not valid JSON"),
        ('[{"a": 1} {"b": 2}]', "expected `,` or `]` after record 0"),
        ('[{"a": 1}, {"b": ', "record 1 is not valid JSON"),
        ('[{"a": 1}', "ends without `]`"),
        ('"just a string"', "expected a JSON list of records"),
    ],
)
def test_malformed_json_is_one_line_naming_the_record(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=problem) as caught:
        list(iter_json_records(str(path), chunk_chars=4))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_non_utf8_annotations_are_named(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"value": "café"}]'.encode("latin-1"))
    with pytest.raises(AnnotationError, match="not UTF-8"):
        list(iter_json_records(str(path)))


def test_prepare_refuses_broken_annotations_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('[{"id": 1}, {oops}]')
    code = main(
        [
            "data",
            "prepare",
            "--format",
            "vision-flan",
            "--annotations",
            str(tmp_path / "bad.json"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "record 1 is not valid JSON" in err and "Traceback" not in err


def test_a_save_to_disk_dataset_prepares_with_inline_images(tmp_path):
    hf_dataset().save_to_disk(str(tmp_path / "saved"))
    manifest = prepare(
        PrepareConfig(fmt="vision-flan", annotations=str(tmp_path / "saved"), out=str(tmp_path / "out"))
    ).manifest
    assert manifest["instances"] == 6 and set(manifest["tasks"]) == {"task0", "task1"}
    records = {r["key"]: r for r in iter_shard_records(str(tmp_path / "out"))}
    assert records["task0/0.jpg"]["image_bytes"] == jpeg(0)  # datasets keeps the base name of embedded images
    assert prepare(
        PrepareConfig(fmt="vision-flan", annotations=str(tmp_path / "saved"), out=str(tmp_path / "out"))
    ).up_to_date


def test_a_dataset_dict_needs_an_existing_split(tmp_path):
    datasets.DatasetDict({"train": hf_dataset(), "validation": hf_dataset(2)}).save_to_disk(str(tmp_path / "dd"))
    assert len(list(iter_hf_records(str(tmp_path / "dd"), "validation"))) == 2
    with pytest.raises(AnnotationError, match="no split 'test'; splits: train, validation"):
        list(iter_hf_records(str(tmp_path / "dd"), "test"))


def hub_snapshot(root: Path) -> Path:
    """A folder laid out as a dataset repository on the Hub: data/train-*.parquet."""
    (root / "data").mkdir(parents=True)
    hf_dataset().to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_a_local_hub_snapshot_streams(tmp_path):
    snapshot = hub_snapshot(tmp_path / "snapshot")
    first = next(iter(iter_hf_records(str(snapshot))))
    assert first["task_name"] == "task0" and first["image"]["bytes"] == jpeg(0)  # not decoded
    manifest = prepare(PrepareConfig(fmt="vision-flan", annotations=str(snapshot), out=str(tmp_path / "out"))).manifest
    assert manifest["instances"] == 6


def test_hf_uri_reads_the_hub_cache_offline(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "datasets--Vision-Flan--tiny"
    hub_snapshot(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manifest = prepare(
        PrepareConfig(fmt="vision-flan", annotations="hf://Vision-Flan/tiny", out=str(tmp_path / "out"))
    ).manifest
    assert manifest["instances"] == 6
    with pytest.raises(AnnotationError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set"):
        list(iter_hf_records("hf://Vision-Flan/absent"))
