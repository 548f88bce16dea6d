"""`vlmtune data prepare`: raw Vision-Flan / LLaVA annotations + images -> task shards.

The converter streams: annotations are parsed and validated up front (text only), then each
task's images are fetched a small window at a time by a thread pool (object-store latency, not
CPU, is what bounds a conversion of 1.6M images from s3), checked to decode, and appended to
that task's shard writer. Memory holds the annotations' text, one window of images and one
row group per task being written, never the images of a whole task or dataset.

Real-format facts handled here (see DESIGN.md, "Data plane"):
- Vision-Flan `id` repeats across tasks: records are keyed by task + image;
- `<image>` may sit at the end of the human turn (kept as is; preprocessing moves it);
- at most `max_per_task` records per task, the first ones in file order that survive checks;
- LLaVA records are multi-turn and may have no image at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from PIL import Image

from vlmtune import storage
from vlmtune.data.shards import (CAPPED, FORMAT, FORMAT_VERSION, MANIFEST, SCHEMA, ShardFormatError, ShardWriter,
                                 read_manifest)
from vlmtune.data.records import identify
from vlmtune_model.template import SYSTEM_VICUNA_V1
from vlmtune_model.tokenizer import IMAGE_TOKEN

FORMATS = ("vision-flan", "llava")
_EXAMPLES_PER_REASON = 3


@dataclass(frozen=True)
class PrepareConfig:
    """One conversion; every field but `io_threads` is part of the input fingerprint."""

    fmt: str  # "vision-flan" | "llava"
    annotations: str  # JSON list file, local or s3://
    out: str  # output folder, local or s3://
    images: str | None = None  # folder or .zip (local or s3://); default: the annotation file's folder
    max_per_task: int | None = None
    shard_size_mb: float = 256.0
    image_tokens: int = 576  # placeholder tokens one image costs (CLIP ViT-L/14-336: 24 x 24)
    io_threads: int = 16

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ValueError(f"--format: {self.fmt!r} is not one of {', '.join(FORMATS)}")
        if self.max_per_task is not None and self.max_per_task < 1:
            raise ValueError(f"--max-per-task: {self.max_per_task} must be >= 1 (or omitted for no cap)")
        if self.shard_size_mb <= 0:
            raise ValueError(f"--shard-size-mb: {self.shard_size_mb} must be > 0")

    @property
    def image_root(self) -> str:
        return storage.absolute(self.images) if self.images else _parent(storage.absolute(self.annotations))


@dataclass(frozen=True)
class Candidate:
    """An annotation record that passed the text checks; its image is not read yet."""

    key: str
    task: str
    source_id: str
    image_name: str  # "" for text-only records
    conversations: str  # JSON
    est_tokens: int
    where: str  # "file[index]" for skip examples


@dataclass
class PrepareResult:
    up_to_date: bool
    manifest: dict


@dataclass
class _Skips:
    """Skip counts by reason with a few examples of each (ReadReport keeps too few per reason)."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, where: str) -> None:
        seen = self.reasons.get(reason, 0)
        self.reasons[reason] = seen + 1
        if seen < _EXAMPLES_PER_REASON:
            self.examples.append(f"{where}: {reason}")

    def as_manifest(self) -> dict:
        return {"total": sum(self.reasons.values()), "reasons": dict(sorted(self.reasons.items())),
                "examples": self.examples}


# ---------------------------------------------------------------- pure parts


def parse_annotations(raw: Iterable, fmt: str, source: str, image_tokens: int,
                      skips: _Skips | None = None) -> dict[str, list[Candidate]]:
    """Validate and key raw records; candidates by task in file order. Rejects go to `skips`.

    Keys: Vision-Flan by task + image, LLaVA by task + id. A key seen before with the same
    content is a duplicate (skipped); with different content (several questions on one image)
    it is a distinct sample and gets `#2`, `#3`, ... appended.
    """
    skips = skips if skips is not None else _Skips()
    tasks: dict[str, list[Candidate]] = {}
    seen: dict[str, tuple[str, int]] = {}  # key -> (content digest, occurrences)
    for index, item in enumerate(raw):
        where = f"{source}[{index}]"
        try:
            candidate = _candidate(item, fmt, where, index, image_tokens)
        except ValueError as err:
            skips.add(str(err), where)
            continue
        digest = hashlib.sha256(f"{candidate.image_name}\n{candidate.conversations}".encode()).hexdigest()
        previous = seen.get(candidate.key)
        if previous is not None:
            if previous[0] == digest:
                skips.add("duplicate record", where)
                continue
            seen[candidate.key] = (previous[0], previous[1] + 1)
            candidate = replace(candidate, key=f"{candidate.key}#{previous[1] + 1}")
        else:
            seen[candidate.key] = (digest, 1)
        tasks.setdefault(candidate.task, []).append(candidate)
    return tasks


def estimate_tokens(conversations: list[dict], has_image: bool, image_tokens: int) -> int:
    """Cheap training-length estimate: text at ~4 characters per token, plus template and image.

    LLaMA's SentencePiece averages about 4 characters per token on English prose; the estimate
    feeds length grouping and budgets, where +-20% is harmless and a tokenizer per record is not.
    """
    text = sum(len(str(turn.get("value", "")).replace(IMAGE_TOKEN, "")) for turn in conversations)
    template = len(SYSTEM_VICUNA_V1) // 4 + 6 * len(conversations) + 1  # system, role tags, bos
    return math.ceil(text / 4) + template + (image_tokens if has_image else 0)


def check_image(data: bytes) -> str | None:
    """None when `data` decodes as an image, else the error's type name.

    The image is decoded for real (`verify()` would miss truncated JPEG scans), at the smallest
    DCT scale for JPEGs: the whole entropy-coded stream is still read, at an eighth of the cost.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except Exception as err:  # PIL raises many types for bad data; all mean "cannot train on it"
        return type(err).__name__
    return None


def _candidate(item: object, fmt: str, where: str, index: int, image_tokens: int) -> Candidate:
    ident = identify(item, fmt, index)
    return Candidate(key=ident.key, task=ident.task, source_id=str(item.get("id", "")), image_name=ident.image,
                     conversations=json.dumps(ident.conversations, ensure_ascii=False),
                     est_tokens=estimate_tokens(ident.conversations, bool(ident.image), image_tokens), where=where)


# ---------------------------------------------------------------- image stores


class FolderImages:
    """Images as files below a folder (local or s3://)."""

    def __init__(self, root: str):
        self.root = root

    def read(self, name: str) -> bytes:
        return storage.read_bytes(storage.join(self.root, name))

    def fingerprint(self, names: set[str]) -> str:
        # Size + mtime of the referenced files, from one listing (no per-object requests).
        sha = hashlib.sha256()
        for path, size, mtime in storage.list_files(self.root):
            if path in names:
                sha.update(f"{path}\t{size}\t{mtime}\n".encode())
        return sha.hexdigest()


class ZipImages:
    """Images as members of a .zip (local or s3://); only the central directory is read up front."""

    def __init__(self, uri: str):
        self._zip = zipfile.ZipFile(storage.open_input(uri))
        self._members = {info.filename: info for info in self._zip.infolist() if not info.is_dir()}
        # Release zips often wrap everything in one top folder that annotations do not name.
        tops = {name.split("/", 1)[0] for name in self._members if "/" in name}
        self._prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in self._members) else ""

    def _member(self, name: str) -> zipfile.ZipInfo | None:
        return self._members.get(name) or self._members.get(self._prefix + name)

    def read(self, name: str) -> bytes:
        info = self._member(name)
        if info is None:
            raise FileNotFoundError(name)
        return self._zip.read(info)

    def fingerprint(self, names: set[str]) -> str:
        sha = hashlib.sha256()
        for name in sorted(names):
            info = self._member(name)
            if info is not None:  # CRC and size from the central directory: no member is read
                sha.update(f"{name}\t{info.file_size}\t{info.CRC}\n".encode())
        return sha.hexdigest()


def open_images(uri: str) -> FolderImages | ZipImages:
    return ZipImages(uri) if uri.lower().endswith(".zip") else FolderImages(uri)


# ---------------------------------------------------------------- the conversion


def prepare(config: PrepareConfig, progress: Callable[[str], None] | None = None) -> PrepareResult:
    """Convert `config.annotations` + images into task shards at `config.out`.

    Returns:
        `up_to_date=True` with the existing manifest when the output already holds this exact
        input (same fingerprint); otherwise the manifest just written.
    """
    log = progress or (lambda message: None)
    annotation_bytes = storage.read_bytes(config.annotations)
    raw = json.loads(annotation_bytes)
    if not isinstance(raw, list):
        raise ValueError(f"{config.annotations}: expected a JSON list of records, got {type(raw).__name__}")
    skips = _Skips()
    tasks = parse_annotations(raw, config.fmt, config.annotations.rsplit("/", 1)[-1], config.image_tokens, skips)
    del raw
    images = open_images(config.image_root)
    fingerprint = _fingerprint(config, hashlib.sha256(annotation_bytes).hexdigest(), images, tasks)
    del annotation_bytes
    existing = _existing_manifest(config.out)
    if existing is not None and existing.get("fingerprint") == fingerprint:
        return PrepareResult(up_to_date=True, manifest=existing)
    _clear_output(config.out)
    shards, counts = [], {}
    with ThreadPoolExecutor(max_workers=max(1, config.io_threads)) as pool:
        for task, candidates in sorted(tasks.items()):
            written, kept = _write_task(config, task, candidates, images, pool, skips)
            shards.extend(written)
            counts[task] = kept
            log(f"{task}: {kept} kept of {len(candidates)}, {len(written)} shard(s)")
    manifest = _manifest(config, fingerprint, counts, shards, skips)
    # Last: until the manifest exists, the folder is not a dataset (readers refuse it).
    storage.write_bytes(storage.join(config.out, MANIFEST), json.dumps(manifest, indent=1).encode())
    return PrepareResult(up_to_date=False, manifest=manifest)


def _write_task(config: PrepareConfig, task: str, candidates: list[Candidate], images, pool: ThreadPoolExecutor,
                skips: _Skips) -> tuple[list[dict], int]:
    writer = ShardWriter(config.out, task, int(config.shard_size_mb * (1 << 20)))
    cap = config.max_per_task or len(candidates)
    kept, position = 0, 0
    window = max(1, 2 * config.io_threads)
    while position < len(candidates) and kept < cap:
        # Never fetch more than could still be kept: no image past the cap is downloaded.
        batch = candidates[position:position + min(window, cap - kept)]
        position += len(batch)
        for candidate, (data, reason, detail) in zip(batch, pool.map(lambda c: _load(images, c), batch)):
            if reason:
                skips.add(reason, f"{candidate.where} ({', '.join(filter(None, (candidate.image_name, detail)))})")
                continue
            writer.add({"key": candidate.key, "task": task, "source_id": candidate.source_id, "image_bytes": data,
                        "image_name": candidate.image_name, "conversations": candidate.conversations,
                        "est_tokens": candidate.est_tokens})
            kept += 1
    for candidate in candidates[position:]:
        skips.add(CAPPED, candidate.where)
    return writer.close(), kept


def _load(images, candidate: Candidate) -> tuple[bytes | None, str, str]:
    """(image bytes, skip reason, detail); runs in the I/O thread pool."""
    if not candidate.image_name:
        return None, "", ""
    try:
        data = images.read(candidate.image_name)
    except FileNotFoundError:
        return None, "image not found", ""
    error = check_image(data)
    return (None, "corrupt image", error) if error else (data, "", "")


def _fingerprint(config: PrepareConfig, annotations_sha: str, images, tasks: dict[str, list[Candidate]]) -> str:
    names = {c.image_name for candidates in tasks.values() for c in candidates if c.image_name}
    parts = {"format_version": FORMAT_VERSION, "fmt": config.fmt, "annotations_sha256": annotations_sha,
             "images": images.fingerprint(names), "max_per_task": config.max_per_task,
             "shard_size_mb": config.shard_size_mb, "image_tokens": config.image_tokens}
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _existing_manifest(out: str) -> dict | None:
    try:
        return read_manifest(out)
    except ShardFormatError:
        return None


def _clear_output(out: str) -> None:
    """Drop a previous run's manifest (first) and task folders; anything else in `out` stays."""
    storage.delete_file(storage.join(out, MANIFEST))
    for name in storage.list_dir(out):
        if name.startswith("task="):
            storage.delete_dir(storage.join(out, name))


def _manifest(config: PrepareConfig, fingerprint: str, counts: dict[str, int], shards: list[dict],
              skips: _Skips) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": "vlmtune data prepare",
        "fingerprint": fingerprint,
        "source": {"format": config.fmt, "annotations": storage.absolute(config.annotations),
                   "images": config.image_root, "max_per_task": config.max_per_task,
                   "shard_size_mb": config.shard_size_mb, "image_tokens": config.image_tokens},
        "columns": SCHEMA.names,
        "instances": sum(counts.values()),
        "tasks": {task: {"instances": count, "shards": sum(1 for s in shards if s["task"] == task)}
                  for task, count in sorted(counts.items())},
        "shards": shards,
        "skipped": skips.as_manifest(),
    }


def _parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0] if "/" in uri else "."
