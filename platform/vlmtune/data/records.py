"""Raw annotations (Vision-Flan, LLaVA) -> uniform sample records for the pipeline.

A record is a plain dict so it crosses Ray task boundaries cheaply:
`{"key": str, "task": str, "image": str ("" when text-only), "conversations": str (JSON)}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from vlmtune import storage
from vlmtune.data.annotations import iter_json_records
from vlmtune_model.template import normalize_turns


@dataclass
class SkipCounts:
    """What a read kept and what it skipped, with reasons (bad records never crash a run)."""

    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {reason}")

    def merge(self, other: SkipCounts) -> None:
        self.kept += other.kept
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])


def read_annotations(uri: str, images: str | None, fmt: str) -> tuple[list[dict], SkipCounts]:
    """Read a Vision-Flan or LLaVA annotation file into records.

    Args:
        uri: the JSON annotation file (local or s3://).
        images: image folder; relative `image` fields resolve against it (default: the file's folder).
        fmt: "vision-flan" or "llava".
    """
    raw = iter_json_records(uri)
    image_root = images or uri.rsplit("/", 1)[0] if "/" in uri else "."
    image_root = storage.absolute(images or image_root)
    return to_records(raw, image_root, fmt, source=uri)


def to_records(raw: Iterable[dict], image_root: str, fmt: str, source: str) -> tuple[list[dict], SkipCounts]:
    records, report, seen = [], SkipCounts(), set()
    for index, item in enumerate(raw):
        where = f"{source}[{index}]"
        try:
            record = _record(item, image_root, fmt, index)
        except (ValueError, TypeError, KeyError) as err:
            report.skip(str(err).strip("'\""), where)
            continue
        if record["key"] in seen:
            report.skip("duplicate task + image", where)
            continue
        seen.add(record["key"])
        records.append(record)
    report.kept = len(records)
    return records, report


@dataclass(frozen=True)
class Identity:
    """What makes a raw record trainable and unique: its checked conversations, task, key and image name."""

    conversations: list
    task: str
    key: str
    image: str


def identify(item: object, fmt: str, index: int) -> Identity:
    """Check one raw Vision-Flan or LLaVA record and name it.

    Raises:
        ValueError: with the reason the record cannot train (it is skipped and counted).
    """
    if not isinstance(item, dict):
        raise ValueError("record is not a JSON object")
    conversations = item.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("no conversations")
    if not all(isinstance(turn, dict) and isinstance(turn.get("value", ""), str) for turn in conversations):
        raise ValueError("malformed conversations")
    normalize_turns(conversations)  # raises on records that cannot train
    image = item.get("image") or ""
    if not isinstance(image, str):
        raise ValueError("malformed image field")
    if fmt == "vision-flan":
        task = item.get("task_name")
        if not task:
            raise ValueError("no task_name")
        if not image:
            raise ValueError("no image")
        key = f"{task}/{image}"  # Vision-Flan ids repeat across tasks: key by task + image
    else:
        task = item.get("task_name") or "llava"
        key = f"{task}/{item.get('id', index)}"
    if image and (image.startswith("/") or ".." in image.split("/")):
        raise ValueError("image path outside the image folder")
    return Identity(conversations, str(task), key, image)


def _record(item: dict, image_root: str, fmt: str, index: int) -> dict:
    ident = identify(item, fmt, index)
    return {
        "key": ident.key,
        "task": ident.task,
        "image": storage.join(image_root, ident.image) if ident.image else "",
        "conversations": json.dumps(ident.conversations, ensure_ascii=False),
    }
