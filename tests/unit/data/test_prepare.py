"""`vlmtune data prepare` on real-format Vision-Flan and LLaVA samples, with exact counts."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlmtune.cli import main
from vlmtune.data.inspect import inspect_dataset, length_stats
from vlmtune.data.prepare import PrepareConfig, check_image, estimate_tokens, prepare
from vlmtune.data.shards import iter_shard_records

IMAGE_TOKENS = 576


def jpeg(seed: int, size=(96, 64)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (seed % 256, 20, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def turns(human: str, answer: str = "yes") -> list[dict]:
    return [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]


def vision_flan(
    task: str,
    record_id: str,
    image: str,
    human: str = "<image>\nWhat is shown?",
    answer: str = "yes",
    conversations=None,
) -> dict:
    return {
        "id": record_id,
        "image": image,
        "task_name": task,
        "conversations": turns(human, answer) if conversations is None else conversations,
    }


# Vision-Flan: 19 records -> 5 kept (vqa 2, caption 3), 14 skipped for 10 reasons.
VISION_FLAN = [
    vision_flan("vqa", "0", "vqa/0.jpg", human="Is there a cat? Answer yes or no.\n<image>"),  # <image> at the end
    vision_flan("caption", "0", "caption/0.jpg", answer="A cat."),  # the same id in another task: kept
    vision_flan("vqa", "1", "vqa/1.jpg"),  # image missing
    vision_flan("vqa", "2", "vqa/2.jpg"),  # truncated JPEG
    vision_flan("vqa", "3", "vqa/3.png"),  # not an image at all
    vision_flan("vqa", "4", "vqa/4.jpg", answer=""),  # no answer
    vision_flan("vqa", "5", "vqa/5.jpg", conversations=[]),  # empty conversations
    vision_flan("vqa", "6", "vqa/6.jpg", conversations="Q: what? A: that"),  # malformed conversations
    vision_flan("vqa", "7", "vqa/7.jpg", conversations=["human: hi", "gpt: yes"]),  # turns are not objects
    vision_flan("vqa", "0", "vqa/0.jpg", human="Is there a cat? Answer yes or no.\n<image>"),  # exact duplicate
    vision_flan("vqa", "8", "vqa/0.jpg", human="<image>\nIs there a dog?", answer="no"),  # same image, new question
    vision_flan("caption", "1", "caption/1.jpg", answer="A dog."),
    vision_flan("caption", "2", "caption/2.jpg", answer="A bird."),  # image missing: does not use up the cap
    vision_flan("caption", "3", "caption/3.png", answer="A fish."),  # third kept: the cap is reached
    vision_flan("caption", "4", "caption/4.jpg", answer="A cow."),  # over max-per-task
    vision_flan("caption", "5", "caption/5.jpg", answer="A hen."),  # over max-per-task
    {"id": "9", "image": "vqa/0.jpg", "conversations": turns("<image>\nQ?")},  # no task_name
    {"id": "10", "task_name": "vqa", "conversations": turns("Q?")},  # Vision-Flan records need an image
    "not a record",
]
VISION_FLAN_SKIPPED = {
    "image not found": 2,
    "corrupt image": 2,
    "no assistant turn": 1,
    "no conversations": 2,
    "malformed conversations": 1,
    "duplicate record": 1,
    "over max-per-task": 2,
    "no task_name": 1,
    "no image": 1,
    "record is not a JSON object": 1,
}

LLAVA = [
    {
        "id": "000000033471",
        "image": "coco/train2017/000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "The back of the bus features an advertisement."},
        ],
    },
    {
        "id": "i6IyJda_0",
        "conversations": [  # text-only (ShareGPT part of the LLaVA-1.5 mix)
            {"from": "human", "value": "How to tell if a customer segment is well segmented? In 3 bullet points."},
            {"from": "gpt", "value": "1. Homogeneity 2. Distinctiveness 3. Stability"},
        ],
    },
    {"id": "000000052846", "image": "coco/train2017/000000052846.jpg", "conversations": turns("<image>\nWhere?")},
    {"id": "OpenOrca-1", "conversations": [{"from": "human", "value": "Continue the story."}]},  # no answer
]


def write_images(root: Path) -> None:
    files = {
        "vqa/0.jpg": jpeg(0),
        "vqa/2.jpg": jpeg(2)[:400],
        "vqa/3.png": b"not an image",
        "vqa/4.jpg": jpeg(4),
        "caption/0.jpg": jpeg(10),
        "caption/1.jpg": jpeg(11),
        "caption/3.png": png(13),
        "caption/4.jpg": jpeg(14),
        "caption/5.jpg": jpeg(15),
        "coco/train2017/000000033471.jpg": jpeg(20, (640, 480)),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    write_images(root / "images")
    (root / "vision_flan.json").write_text(json.dumps(VISION_FLAN))
    (root / "llava.json").write_text(json.dumps(LLAVA))
    return root


def prepare_vision_flan(raw: Path, out: Path, images: str | None = None, **options):
    config = PrepareConfig(
        fmt="vision-flan",
        annotations=str(raw / "vision_flan.json"),
        images=images or str(raw / "images"),
        out=str(out),
        max_per_task=3,
        **options,
    )
    return prepare(config)


def test_vision_flan_counts_are_exact(raw, tmp_path):
    result = prepare_vision_flan(raw, tmp_path / "shards")
    manifest = result.manifest
    assert not result.up_to_date
    assert manifest["instances"] == 5
    assert {task: info["instances"] for task, info in manifest["tasks"].items()} == {"caption": 3, "vqa": 2}
    assert manifest["skipped"]["reasons"] == VISION_FLAN_SKIPPED
    assert manifest["skipped"]["total"] == 14 == len(VISION_FLAN) - 5
    assert any("vqa/2.jpg" in example and "corrupt image" in example for example in manifest["skipped"]["examples"])
    records = list(iter_shard_records(str(tmp_path / "shards")))
    assert [r["key"] for r in records] == [
        "caption/caption/0.jpg",
        "caption/caption/1.jpg",
        "caption/caption/3.png",
        "vqa/vqa/0.jpg",
        "vqa/vqa/0.jpg#2",
    ]
    # The raw turns are kept as written (<image> at the end); preprocessing moves it to the front.
    assert json.loads(records[3]["conversations"])[0]["value"].endswith("\n<image>")


def test_shards_are_partitioned_by_task_with_checksums(raw, tmp_path):
    import hashlib

    manifest = prepare_vision_flan(raw, tmp_path / "shards").manifest
    for shard in manifest["shards"]:
        path = tmp_path / "shards" / shard["path"]
        assert shard["path"].startswith(f"task={shard['task']}/part-")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        table = pq.read_table(path)
        assert table.num_rows == shard["rows"] and set(table.column("task").to_pylist()) == {shard["task"]}
        assert table.column_names == [
            "key",
            "task",
            "source_id",
            "image_bytes",
            "image_name",
            "conversations",
            "est_tokens",
        ]
    table = pq.read_table(tmp_path / "shards" / "task=vqa")
    assert table.column("source_id").to_pylist() == ["0", "8"]


def test_llava_multi_turn_and_text_only(raw, tmp_path):
    manifest = prepare(
        PrepareConfig(
            fmt="llava", annotations=str(raw / "llava.json"), images=str(raw / "images"), out=str(tmp_path / "llava")
        )
    ).manifest
    assert manifest["tasks"] == {"llava": {"instances": 2, "shards": 1}}
    assert manifest["skipped"]["reasons"] == {"image not found": 1, "no assistant turn": 1}
    multi, text_only = list(iter_shard_records(str(tmp_path / "llava")))
    assert multi["key"] == "llava/000000033471" and len(json.loads(multi["conversations"])) == 4
    assert multi["image_bytes"] == (raw / "images/coco/train2017/000000033471.jpg").read_bytes()
    assert text_only["image"] == "" and text_only["image_bytes"] == b""
    assert text_only["est_tokens"] < IMAGE_TOKENS < multi["est_tokens"]


def test_rerun_on_the_same_input_does_no_work(raw, tmp_path, capsys):
    out = tmp_path / "shards"
    prepare_vision_flan(raw, out)
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    args = [
        "data",
        "prepare",
        "--format",
        "vision-flan",
        "--annotations",
        str(raw / "vision_flan.json"),
        "--images",
        str(raw / "images"),
        "--out",
        str(out),
        "--max-per-task",
        "3",
    ]
    assert main(args) == 1  # 12 of 17 records skipped: more than the default 5%, on a rerun too
    assert "more than --max-skipped-fraction 5.0%" in capsys.readouterr().err
    assert main([*args, "--max-skipped-fraction", "1"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == stamps
    # A changed option is a different input: the output is rebuilt.
    assert main(args[:-1] + ["4", "--max-skipped-fraction", "1"]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["tasks"]["caption"]["instances"] == 4


def test_changed_image_is_a_different_input(raw, tmp_path):
    out = tmp_path / "shards"
    prepare_vision_flan(raw, out)
    image = raw / "images/caption/1.jpg"
    image.write_bytes(jpeg(99))
    os.utime(image, (1, 1))
    assert not prepare_vision_flan(raw, out).up_to_date


def test_zip_input_gives_the_same_shards(raw, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((raw / "images").rglob("*")):
            if path.is_file():  # release zips wrap everything in one top folder
                handle.write(path, f"images_191task_1k/{path.relative_to(raw / 'images')}")
    from_zip = prepare_vision_flan(raw, tmp_path / "from_zip", images=str(archive)).manifest
    from_folder = prepare_vision_flan(raw, tmp_path / "from_folder").manifest
    assert from_zip["skipped"]["reasons"] == from_folder["skipped"]["reasons"] == VISION_FLAN_SKIPPED
    assert list(iter_shard_records(str(tmp_path / "from_zip"))) == list(
        iter_shard_records(str(tmp_path / "from_folder"))
    )
    assert prepare_vision_flan(raw, tmp_path / "from_zip", images=str(archive)).up_to_date


def test_shard_size_is_bounded(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    raw = []
    for index in range(40):
        (images / f"{index}.jpg").write_bytes(jpeg(index, (128, 128)))
        raw.append(vision_flan("big", str(index), f"{index}.jpg"))
    (tmp_path / "ann.json").write_text(json.dumps(raw))
    limit_mb = 0.1
    config = PrepareConfig(
        fmt="vision-flan",
        annotations=str(tmp_path / "ann.json"),
        out=str(tmp_path / "out"),
        images=str(images),
        shard_size_mb=limit_mb,
    )
    manifest = prepare(config).manifest
    largest_row = max(len((images / f"{i}.jpg").read_bytes()) for i in range(40))
    assert len(manifest["shards"]) > 3
    assert sum(shard["rows"] for shard in manifest["shards"]) == 40
    assert all(shard["bytes"] <= limit_mb * 2**20 + largest_row + 8192 for shard in manifest["shards"])


def test_inspect_reports_tasks_lengths_and_skips(raw, tmp_path, capsys):
    prepare_vision_flan(raw, tmp_path / "shards")
    report = inspect_dataset(str(tmp_path / "shards"))
    assert report["instances"] == 5 and report["shards"]["count"] == 2
    assert {task: info["instances"] for task, info in report["tasks"].items()} == {"caption": 3, "vqa": 2}
    lengths = [r["est_tokens"] for r in list(iter_shard_records(str(tmp_path / "shards")))]
    assert report["est_tokens"] == length_stats(lengths)
    assert report["est_tokens"]["min"] == min(lengths) and report["est_tokens"]["max"] == max(lengths)
    assert report["skipped"]["reasons"] == VISION_FLAN_SKIPPED
    assert main(["data", "inspect", str(tmp_path / "shards"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"]["vqa"]["instances"] == 2
    assert main(["data", "inspect", str(tmp_path / "shards")]) == 0
    text = capsys.readouterr().out
    assert "5 instances in 2 tasks" in text and "corrupt image" in text and "p99" in text


def test_length_stats_percentiles():
    stats = length_stats(list(range(1, 101)))
    assert stats == {"min": 1, "p50": 50, "p90": 90, "p99": 99, "max": 100, "mean": 50.5}


def test_estimate_counts_image_tokens_once_and_text_by_length():
    short = estimate_tokens(turns("<image>\nQ?", "A"), True, IMAGE_TOKENS)
    long = estimate_tokens(turns("<image>\n" + "word " * 400, "A"), True, IMAGE_TOKENS)
    text_only = estimate_tokens(turns("Q?", "A"), False, IMAGE_TOKENS)
    assert short - text_only == IMAGE_TOKENS
    assert long - short == 500  # 2000 more characters at 4 per token


def test_check_image_decodes_for_real():
    assert check_image(jpeg(1, (640, 480))) is None and check_image(png(1)) is None
    assert check_image(jpeg(1, (640, 480))[:5000]) == "OSError"  # truncated scan, caught despite draft decode
    assert check_image(b"\x89PNG garbage") == "UnidentifiedImageError"


def test_bad_options_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--max-per-task"):
        PrepareConfig(fmt="vision-flan", annotations="a.json", out="o", max_per_task=0)
    with pytest.raises(ValueError, match="--format"):
        PrepareConfig(fmt="coco", annotations="a.json", out="o")
