"""`vlmtune data prepare`: raw Vision-Flan / LLaVA annotations + images -> task shards.

Memory stays bounded whatever the instance count, in two streaming passes:

1. the annotations are streamed (`data.annotations`: a JSON list is never parsed whole, a Hugging
   Face dataset is iterated row by row), each record checked (text only) and spilled to a local
   scratch file of its task, in file order;
2. task by task, the spilled candidates are de-duplicated, capped at `max_per_task`, their images
   fetched a small window at a time by a thread pool (object-store latency, not CPU, bounds a
   conversion of 1.6M images from s3) and decoded once to check them, and the rows streamed into
   that task's shard writer (one open shard at a time, so an s3 output holds one upload buffer).

Then `index.parquet` is written from the shards' small columns and `manifest.json` last.

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
import pickle
import shutil
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from vlmtune import storage
from vlmtune.data.annotations import (
    fingerprint,
    folder_fingerprint,
    image_of,
    is_hf_dataset,
    iter_hf_records,
    iter_json_records,
)
from vlmtune.data.records import identify
from vlmtune.data.shards import (
    CAPPED,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SCHEMA,
    ShardFormatError,
    ShardWriter,
    read_manifest,
    write_index,
)
from vlmtune_model.template import SYSTEM_VICUNA_V1
from vlmtune_model.tokenizer import IMAGE_TOKEN

FORMATS = ("vision-flan", "llava")
_EXAMPLES_PER_REASON = 3
_OPEN_SPILLS = 128  # scratch files kept open at once (Vision-Flan has 191 tasks; the OS limit is ~1024)


@dataclass(frozen=True)
class PrepareConfig:
    """One conversion; every field but `io_threads` is part of the input fingerprint."""

    fmt: str  # "vision-flan" | "llava"
    annotations: str  # JSON list / JSON Lines file (local or s3://), or a Hugging Face dataset (folder or hf://)
    out: str  # output folder, local or s3://
    images: str | None = None  # folder or .zip (local or s3://); default: the annotation file's folder
    split: str = "train"  # the split of a Hugging Face dataset
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
        if self.images:
            return storage.absolute(self.images)
        source = storage.absolute(self.annotations)
        return source if is_hf_dataset(self.annotations) else _parent(source)


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
    image_bytes: bytes | None = None  # inline (Hugging Face `Image` columns); None: read from the image store


@dataclass
class PrepareResult:
    up_to_date: bool
    manifest: dict


@dataclass
class _Skips:
    """Skip counts by reason with a few examples of each."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, where: str) -> None:
        seen = self.reasons.get(reason, 0)
        self.reasons[reason] = seen + 1
        if seen < _EXAMPLES_PER_REASON:
            self.examples.append(f"{where}: {reason}")

    def as_manifest(self) -> dict:
        return {
            "total": sum(self.reasons.values()),
            "reasons": dict(sorted(self.reasons.items())),
            "examples": self.examples,
        }


# ---------------------------------------------------------------- pure parts


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


def candidate(item: object, fmt: str, where: str, index: int, image_tokens: int) -> Candidate:
    """Check one raw record (text only) and name it.

    Raises:
        ValueError: with the reason the record cannot train (it is skipped and counted).
    """
    inline = None
    if isinstance(item, dict) and isinstance(item.get("image"), dict):  # an undecoded datasets Image
        name, inline = image_of(item["image"])
        item = {**item, "image": name or (f"inline-{index}" if inline else "")}
    ident = identify(item, fmt, index)
    return Candidate(
        key=ident.key,
        task=ident.task,
        source_id=str(item.get("id", "")),
        image_name=ident.image,
        conversations=json.dumps(ident.conversations, ensure_ascii=False),
        est_tokens=estimate_tokens(ident.conversations, bool(ident.image), image_tokens),
        where=where,
        image_bytes=inline,
    )


def dedupe(candidates: Iterator[Candidate], skips: _Skips) -> Iterator[Candidate]:
    """One task's candidates with exact duplicates dropped and same-key variants renamed `#2`, `#3`, ...

    Keys are task-prefixed, so duplicates only ever meet inside one task: the table of keys seen is
    one task's, never the dataset's.
    """
    seen: dict[str, tuple[bytes, int]] = {}  # key -> (content digest, occurrences)
    for item in candidates:
        digest = hashlib.blake2b(f"{item.image_name}\n{item.conversations}".encode(), digest_size=16).digest()
        previous = seen.get(item.key)
        if previous is None:
            seen[item.key] = (digest, 1)
        elif previous[0] == digest:
            skips.add("duplicate record", item.where)
            continue
        else:
            seen[item.key] = (previous[0], previous[1] + 1)
            item = replace(item, key=f"{item.key}#{previous[1] + 1}")
        yield item


# ---------------------------------------------------------------- image stores


class FolderImages:
    """Images as files below a folder (local or s3://)."""

    def __init__(self, root: str):
        self.root = root

    def read(self, name: str) -> bytes:
        return storage.read_bytes(storage.join(self.root, name))

    def fingerprint(self) -> str:
        return folder_fingerprint(self.root)


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

    def fingerprint(self) -> str:
        sha = hashlib.sha256()
        for name, info in sorted(self._members.items()):  # CRC and size from the central directory
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

    Raises:
        AnnotationError: the annotations cannot be read (not JSON, not a list, not UTF-8, no such dataset).
    """
    log = progress or (lambda message: None)
    images = open_images(config.image_root)
    input_fingerprint = _fingerprint(config, images)
    existing = _existing_manifest(config.out)
    if existing is not None and existing.get("fingerprint") == input_fingerprint:
        return PrepareResult(up_to_date=True, manifest=existing)
    skips = _Skips()
    scratch = Path(tempfile.mkdtemp(prefix="vlmtune-prepare-"))
    try:
        spilled = _spill(config, skips, _Spill(scratch))
        log(f"{config.annotations}: {sum(spilled.values())} records in {len(spilled)} tasks pass the text checks")
        _clear_output(config.out)
        shards, counts = [], {}
        with ThreadPoolExecutor(max_workers=max(1, config.io_threads)) as pool:
            for task in sorted(spilled):
                candidates = dedupe(_Spill.read(scratch, task), skips)
                written, kept = _write_task(config, task, candidates, images, pool, skips)
                shards.extend(written)
                counts[task] = kept
                log(f"{task}: {kept} kept of {spilled[task]}, {len(written)} shard(s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shards.sort(key=lambda shard: shard["path"])
    index = write_index(config.out, shards, config.image_tokens)
    manifest = _manifest(config, input_fingerprint, counts, shards, index, skips)
    # Last: until the manifest exists, the folder is not a dataset (readers refuse it).
    storage.write_bytes(storage.join(config.out, MANIFEST), json.dumps(manifest, indent=1).encode())
    return PrepareResult(up_to_date=False, manifest=manifest)


def raw_records(config: PrepareConfig) -> Iterator[object]:
    if is_hf_dataset(config.annotations):
        return iter_hf_records(config.annotations, config.split)
    return iter_json_records(config.annotations)


def _spill(config: PrepareConfig, skips: _Skips, spill: _Spill) -> dict[str, int]:
    """Pass 1: check every record's text and append it to its task's scratch file; candidates per task."""
    source = config.annotations.rstrip("/").rsplit("/", 1)[-1]
    counts: dict[str, int] = {}
    for index, item in enumerate(raw_records(config)):
        where = f"{source}[{index}]"
        try:
            found = candidate(item, config.fmt, where, index, config.image_tokens)
        except ValueError as err:
            skips.add(str(err), where)
            continue
        spill.add(found)
        counts[found.task] = counts.get(found.task, 0) + 1
    spill.close()
    return counts


class _Spill:
    """Per-task scratch files of pickled candidates, in arrival order; a bounded number open at once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._open: OrderedDict[str, object] = OrderedDict()

    @staticmethod
    def path(folder: Path, task: str) -> Path:
        return folder / (hashlib.sha256(task.encode()).hexdigest()[:32] + ".pkl")

    def add(self, item: Candidate) -> None:
        handle = self._open.pop(item.task, None)
        if handle is None:
            if len(self._open) >= _OPEN_SPILLS:
                self._open.popitem(last=False)[1].close()
            handle = open(self.path(self.folder, item.task), "ab")  # noqa: SIM115 - kept open across calls, LRU-closed
        self._open[item.task] = handle
        pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    @staticmethod
    def read(folder: Path, task: str) -> Iterator[Candidate]:
        with open(_Spill.path(folder, task), "rb") as handle:  # our own scratch file, written above
            while True:
                try:
                    yield pickle.load(handle)
                except EOFError:
                    return


def _write_task(
    config: PrepareConfig, task: str, candidates: Iterator[Candidate], images, pool: ThreadPoolExecutor, skips: _Skips
) -> tuple[list[dict], int]:
    writer = ShardWriter(config.out, task, int(config.shard_size_mb * (1 << 20)))
    cap = config.max_per_task
    kept, pending = 0, []
    window = max(1, 2 * config.io_threads)
    for item in candidates:
        if cap is not None and kept + len(pending) >= cap:
            kept += _flush(writer, pending, images, pool, skips)  # failures may leave room below the cap
            pending = []
            if kept >= cap:
                skips.add(CAPPED, item.where)
                continue
        pending.append(item)
        if len(pending) >= window:
            kept += _flush(writer, pending, images, pool, skips)
            pending = []
    kept += _flush(writer, pending, images, pool, skips)
    return writer.close(), kept


def _flush(writer: ShardWriter, batch: list[Candidate], images, pool: ThreadPoolExecutor, skips: _Skips) -> int:
    """Fetch and check the images of `batch` in parallel, write the good rows in order; returns rows written."""
    written = 0
    for item, (data, reason, detail) in zip(batch, pool.map(lambda c: _load(images, c), batch)):
        if reason:
            skips.add(reason, f"{item.where} ({', '.join(filter(None, (item.image_name, detail)))})")
            continue
        writer.add(
            {
                "key": item.key,
                "task": item.task,
                "source_id": item.source_id,
                "image_bytes": data,
                "image_name": item.image_name,
                "conversations": item.conversations,
                "est_tokens": item.est_tokens,
            }
        )
        written += 1
    return written


def _load(images, item: Candidate) -> tuple[bytes | None, str, str]:
    """(image bytes, skip reason, detail); runs in the I/O thread pool."""
    if not item.image_name:
        return None, "", ""
    data = item.image_bytes
    if data is None:
        try:
            data = images.read(item.image_name)
        except FileNotFoundError:
            return None, "image not found", ""
    error = check_image(data)
    return (None, "corrupt image", error) if error else (data, "", "")


def _fingerprint(config: PrepareConfig, images) -> str:
    parts = {
        "format_version": FORMAT_VERSION,
        "fmt": config.fmt,
        "annotations": fingerprint(config.annotations),
        "split": config.split,
        "images": images.fingerprint() if config.images or not is_hf_dataset(config.annotations) else None,
        "max_per_task": config.max_per_task,
        "shard_size_mb": config.shard_size_mb,
        "image_tokens": config.image_tokens,
    }
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _existing_manifest(out: str) -> dict | None:
    try:
        return read_manifest(out)
    except ShardFormatError:
        return None


def _clear_output(out: str) -> None:
    """Drop a previous run's manifest (first), index and task folders; anything else in `out` stays."""
    storage.delete_file(storage.join(out, MANIFEST))
    for name in storage.list_dir(out):
        if name.startswith("task=") or name == "index.parquet":
            target = storage.join(out, name)
            storage.delete_dir(target) if name.startswith("task=") else storage.delete_file(target)


def _manifest(
    config: PrepareConfig,
    input_fingerprint: str,
    counts: dict[str, int],
    shards: list[dict],
    index: dict,
    skips: _Skips,
) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": "vlmtune data prepare",
        "fingerprint": input_fingerprint,
        "source": {
            "format": config.fmt,
            "annotations": storage.absolute(config.annotations),
            "images": config.image_root,
            "split": config.split,
            "max_per_task": config.max_per_task,
            "shard_size_mb": config.shard_size_mb,
            "image_tokens": config.image_tokens,
        },
        "columns": SCHEMA.names,
        "instances": sum(counts.values()),
        "tasks": {
            task: {"instances": count, "shards": sum(1 for s in shards if s["task"] == task)}
            for task, count in sorted(counts.items())
        },
        "shards": shards,
        "index": index,
        "skipped": skips.as_manifest(),
    }


def _parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0] if "/" in uri else "."
