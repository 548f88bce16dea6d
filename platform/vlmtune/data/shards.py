"""Task shards: the on-storage layout `vlmtune data prepare` writes and training reads.

```
OUT/manifest.json                          written last: its presence marks a complete dataset
OUT/task=<name>/part-00000.parquet         one task per folder, images inline, bounded size
```

A shard holds the columns of `SCHEMA`; the manifest lists every shard with its row count and
sha256, every task with its instance count, what was skipped and why, and the input fingerprint
that makes a re-run a no-op. Readers go through the manifest, never through a folder listing,
so a half-written re-run can never be read as data.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from vlmtune import storage
from vlmtune.data.records import ReadReport

FORMAT = "vlmtune-task-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CAPPED = "over max-per-task"  # a deliberate cut, not bad input: readers do not count it as skipped

SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),  # task + image (Vision-Flan) or task + id (LLaVA)
    pa.field("task", pa.string(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),  # the record's `id` in the raw file, not unique
    pa.field("image_bytes", pa.binary()),  # null for text-only records
    pa.field("image_name", pa.string(), nullable=False),  # "" for text-only records
    pa.field("conversations", pa.string(), nullable=False),  # JSON list of {"from", "value"}
    pa.field("est_tokens", pa.int32(), nullable=False),  # estimated length with image tokens
])
RECORD_COLUMNS = ["key", "task", "image_name", "image_bytes", "conversations", "est_tokens"]
# Images are JPEG/PNG already; compressing them again costs CPU on every read for nothing.
_COMPRESSION = {name: ("NONE" if name == "image_bytes" else "ZSTD") for name in SCHEMA.names}
_STATISTICS = ["key", "task", "est_tokens"]  # min/max of image bytes would bloat the footer


class ShardFormatError(ValueError):
    """The folder is not a complete task-shard dataset this version can read."""


class ShardChecksumError(ValueError):
    """A shard's bytes differ from the checksum its manifest recorded."""

    def __init__(self, shard: str, expected: str, actual: str):
        super().__init__(f"{shard}: sha256 {actual} does not match the manifest's {expected}; the shard is "
                         "corrupt or was changed after `vlmtune data prepare` wrote it (re-run prepare)")
        self.shard, self.expected, self.actual = shard, expected, actual

    def __reduce__(self):  # keep the message intact across Ray workers
        return type(self), (self.shard, self.expected, self.actual)


def partition_dir(task: str) -> str:
    """`task=<name>`, with characters that are unsafe in object keys percent-escaped."""
    return "task=" + quote(task, safe="-_.+")


# ---------------------------------------------------------------- writing


class _HashingSink:
    """A write-only file that forwards to a storage stream, hashing and counting the bytes."""

    def __init__(self, stream):
        self._stream = stream
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        self.sha.update(data)
        self._stream.write(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    def writable(self) -> bool:
        return True


class ShardWriter:
    """Streams one task's rows into part files of about `max_bytes` each.

    Rows are buffered up to one row group (a quarter of a shard, at most 16 MiB) and written as
    it fills, so memory stays bounded whatever the task size; a file is closed once it reaches
    `max_bytes` (a single row larger than that gets a file of its own).
    """

    def __init__(self, out_uri: str, task: str, max_bytes: int):
        self.out_uri, self.task, self.max_bytes = out_uri, task, max(1, max_bytes)
        self.row_group_bytes = max(1, min(self.max_bytes // 4, 16 << 20))
        self.shards: list[dict] = []
        self._rows: list[dict] = []
        self._buffered = 0
        self._file: tuple[_HashingSink, pq.ParquetWriter, str] | None = None
        self._file_rows = 0

    def add(self, row: dict) -> None:
        self._rows.append(row)
        self._buffered += len(row["image_bytes"] or b"") + len(row["conversations"]) + len(row["key"]) + 64
        written = self._file[0].size if self._file else 0
        if self._buffered >= self.row_group_bytes or written + self._buffered >= self.max_bytes:
            self._write_group()

    def close(self) -> list[dict]:
        """Flush and close; returns the manifest entries of the shards written."""
        if self._rows:
            self._write_group()
        self._close_file()
        return self.shards

    def _write_group(self) -> None:
        if self._file is None:
            relative = f"{partition_dir(self.task)}/part-{len(self.shards):05d}.parquet"
            sink = _HashingSink(storage.open_output(storage.join(self.out_uri, relative)))
            writer = pq.ParquetWriter(sink, SCHEMA, compression=_COMPRESSION, write_statistics=_STATISTICS,
                                      use_dictionary=["task"])
            self._file, self._file_rows = (sink, writer, relative), 0
        table = pa.Table.from_pylist(self._rows, schema=SCHEMA)
        self._file[1].write_table(table, row_group_size=len(self._rows))
        self._file_rows += len(self._rows)
        self._rows, self._buffered = [], 0
        if self._file[0].size >= self.max_bytes:
            self._close_file()

    def _close_file(self) -> None:
        if self._file is None:
            return
        sink, writer, relative = self._file
        writer.close()
        sink.close()
        self.shards.append({"path": relative, "task": self.task, "rows": self._file_rows,
                            "bytes": sink.size, "sha256": sink.sha.hexdigest()})
        self._file = None


# ---------------------------------------------------------------- reading


def read_manifest(uri: str) -> dict:
    """The manifest of the dataset at `uri`.

    Raises:
        ShardFormatError: no manifest (not prepared, or a run that did not finish) or another format.
    """
    manifest_uri = storage.join(uri, MANIFEST)
    try:
        manifest = json.loads(storage.read_bytes(manifest_uri))
    except FileNotFoundError:
        raise ShardFormatError(f"{manifest_uri} does not exist: prepare the data first with "
                               "`vlmtune data prepare --out URI` (or it did not finish)") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ShardFormatError(f"{manifest_uri}: format {manifest.get('format')!r} version "
                               f"{manifest.get('format_version')!r}; this vlmtune reads {FORMAT!r} version "
                               f"{FORMAT_VERSION} (re-run `vlmtune data prepare`)")
    return manifest


def read_shard(uri: str, shard: dict, columns: list[str] | None = None) -> pa.Table:
    """One shard as a table, its sha256 checked against the manifest entry first.

    Raises:
        ShardChecksumError: the bytes do not match the manifest.
    """
    data = storage.read_bytes(storage.join(uri, shard["path"]))
    actual = hashlib.sha256(data).hexdigest()
    if actual != shard["sha256"]:
        raise ShardChecksumError(storage.join(uri, shard["path"]), shard["sha256"], actual)
    return pq.read_table(io.BytesIO(data), columns=columns)


def iter_shard_records(uri: str, tasks: list[str] | None = None) -> Iterator[dict]:
    """Pipeline records of a prepared dataset, shard by shard (one shard in memory at a time).

    Records are `{"key", "task", "image", "image_bytes", "conversations", "est_tokens"}`: `image`
    names the source image ("" for text-only records) and its bytes are inline, so no worker
    needs access to the original image store.
    """
    manifest = read_manifest(uri)
    for shard in manifest["shards"]:
        if tasks is not None and shard["task"] not in tasks:
            continue
        for row in read_shard(uri, shard, RECORD_COLUMNS).to_pylist():
            yield {"key": row["key"], "task": row["task"], "image": row["image_name"],
                   "image_bytes": row["image_bytes"] or b"", "conversations": row["conversations"],
                   "est_tokens": row["est_tokens"]}


def read_shard_records(uri: str, tasks: list[str] | None = None) -> list[dict]:
    """All records of the dataset at `uri` (see `iter_shard_records`)."""
    return list(iter_shard_records(uri, tasks))


def read_report(manifest: dict) -> ReadReport:
    """What prepare kept and skipped, as the pipeline's ReadReport (deliberate caps left out)."""
    skipped = {reason: count for reason, count in manifest["skipped"]["reasons"].items() if reason != CAPPED}
    examples = [example for example in manifest["skipped"]["examples"] if not example.endswith(CAPPED)]
    return ReadReport(kept=manifest["instances"], skipped=skipped, examples=examples)
