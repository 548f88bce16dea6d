"""Vision-Flan / LLaVA annotations -> records: keys by task + image, bad records skipped and counted."""

from __future__ import annotations

import json

from vlmtune.data.records import read_annotations


def turn(human: str, answer: str | None = "yes") -> list[dict]:
    turns = [{"from": "human", "value": human}]
    return turns + ([{"from": "gpt", "value": answer}] if answer is not None else [])


def test_vision_flan_ids_repeat_across_tasks_and_keys_do_not(tmp_path):
    raw = [
        {"id": "0", "image": "a/0.png", "task_name": "task_a", "conversations": turn("Q?\n<image>")},
        {"id": "0", "image": "b/0.png", "task_name": "task_b", "conversations": turn("<image>\nQ?")},
    ]
    (tmp_path / "ann.json").write_text(json.dumps(raw))
    records, report = read_annotations(str(tmp_path / "ann.json"), None, "vision-flan")
    assert [r["key"] for r in records] == ["task_a/a/0.png", "task_b/b/0.png"]
    assert records[0]["image"] == str(tmp_path / "a" / "0.png")
    assert report.kept == 2 and report.skipped == {}


def test_bad_records_are_skipped_with_reasons(tmp_path):
    raw = [
        {"id": "1", "image": "x.png", "task_name": "t", "conversations": turn("<image> Q", None)},
        {"id": "2", "image": "", "task_name": "t", "conversations": turn("Q")},
        {"id": "3", "image": "y.png", "conversations": turn("<image> Q")},
        {"id": "4", "image": "z.png", "task_name": "t", "conversations": turn("<image> Q")},
        {"id": "5", "image": "z.png", "task_name": "t", "conversations": turn("<image> Q")},
        "not a record",
    ]
    (tmp_path / "ann.json").write_text(json.dumps(raw))
    records, report = read_annotations(str(tmp_path / "ann.json"), str(tmp_path / "imgs"), "vision-flan")
    assert [r["key"] for r in records] == ["t/z.png"]
    assert report.skipped == {
        "no assistant turn": 1,
        "no image": 1,
        "no task_name": 1,
        "duplicate task + image": 1,
        "record is not a JSON object": 1,
    }
    assert records[0]["image"].endswith("imgs/z.png")


def test_llava_records_may_be_text_only_and_multi_turn(tmp_path):
    raw = [
        {"id": "a1", "image": "coco/1.jpg", "conversations": turn("<image>\nDescribe.") + turn("More?", "no")},
        {"id": "a2", "conversations": turn("Tell a joke.", "No.")},
    ]
    (tmp_path / "llava.json").write_text(json.dumps(raw))
    records, _ = read_annotations(str(tmp_path / "llava.json"), None, "llava")
    assert [r["image"] != "" for r in records] == [True, False]
    assert len(json.loads(records[0]["conversations"])) == 4
