"""Task shards: the on-storage layout `vlmtune data prepare` writes and training reads.

```
OUT/manifest.json                          written last: its presence marks a complete dataset
OUT/index.parquet                          one small row per sample, in sample-id order (what planning reads)
OUT/task=<name>/part-00000.parquet         one task per folder, images inline, bounded size
```

A shard holds the columns of `SCHEMA` in row groups of about a megabyte, so that a reader can fetch
one sample with one small ranged read rather than a whole file. Every data page carries a CRC32 that
readers check, and the manifest records each shard's size, sha256 and the sha256 of its footer: a
reader that opens a shard checks its size and footer once and every page it reads, so integrity is
verified while reading, whatever part of a shard a rank needs.

The index lists every sample's key, task, estimated text tokens and whether it has an image, in the
order of the manifest's shards and their rows: row i of the index is sample id i. Planning reads its
small columns and nothing else, so the driver never touches image bytes or conversations.

Readers go through the manifest, never through a folder listing, so a half-written re-run can
never be read as data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from collections.abc import Iterator
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlmtune import storage
from vlmtune.data.errors import DataError

FORMAT = "vlmtune-task-shards"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
INDEX = "index.parquet"
CAPPED = "over max-per-task"  # a deliberate cut, not bad input: readers do not count it as skipped
ROW_GROUP_BYTES = 1 << 20  # the unit of a random read: one sample costs at most this much I/O
ROW_GROUP_ROWS = 32
"""At most this many rows in a row group. The training plan draws samples across the whole dataset, so a read
usually wants one row of a group: with small images a 1 MiB group would hold hundreds of rows, all read for one."""

SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # task + image (Vision-Flan) or task + id (LLaVA)
        pa.field("task", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),  # the record's `id` in the raw file, not unique
        pa.field("image_bytes", pa.binary()),  # null for text-only records
        pa.field("image_name", pa.string(), nullable=False),  # "" for text-only records
        pa.field("conversations", pa.string(), nullable=False),  # JSON list of {"from", "value"}
        pa.field("est_tokens", pa.int32(), nullable=False),  # estimated length with image tokens
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("task", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("text_tokens", pa.int32(), nullable=False),  # estimated length without the image's tokens
        pa.field("image", pa.bool_(), nullable=False),
    ]
)
TRAINING_COLUMNS = ["key", "task", "image_bytes", "conversations"]  # what preprocessing reads
RECORD_COLUMNS = ["key", "task", "image_name", "image_bytes", "conversations", "est_tokens"]
# Images are JPEG/PNG already; compressing them again costs CPU on every read for nothing.
_COMPRESSION = {name: ("NONE" if name == "image_bytes" else "ZSTD") for name in SCHEMA.names}
_STATISTICS = ["key", "task", "est_tokens"]  # min/max of image bytes would bloat the footer


class ShardFormatError(DataError):
    """The folder is not a complete task-shard dataset this version can read."""


class ShardIntegrityError(DataError):
    """A shard (or the index) is missing, or its bytes differ from what the manifest recorded."""


def damaged(uri: str, problem: str) -> ShardIntegrityError:
    return ShardIntegrityError(
        f"{uri}: {problem}; the dataset is damaged or was changed after `vlmtune data "
        "prepare` wrote it (restore it, or re-run prepare)"
    )


def partition_dir(task: str) -> str:
    """`task=<name>`, with characters that are unsafe in object keys percent-escaped."""
    return "task=" + quote(task, safe="-_.+")


# ---------------------------------------------------------------- writing


class _HashingSink:
    """A write-only file that forwards to a storage stream, hashing all bytes and, from `mark()`, the tail."""

    def __init__(self, stream):
        self._stream = stream
        self.sha = hashlib.sha256()
        self.tail_sha = None  # a sha256 once `mark()` is called
        self.size = 0
        self.closed = False

    def mark(self) -> None:
        """Start hashing the tail too (called before the Parquet footer is written)."""
        self.tail_sha = hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        if self.tail_sha is not None:
            self.tail_sha.update(data)
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


class _ParquetOut:
    """One Parquet file being written through a hashing sink; `close()` returns its manifest entry."""

    def __init__(self, uri: str, relative: str, schema: pa.Schema, **options):
        self.relative = relative
        self.sink = _HashingSink(storage.open_output(storage.join(uri, relative)))
        self.writer = pq.ParquetWriter(self.sink, schema, write_page_checksum=True, **options)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def close(self) -> dict:
        self.sink.mark()  # everything written from here on is the footer
        self.writer.close()
        self.sink.close()
        return {
            "path": self.relative,
            "rows": self.rows,
            "bytes": self.sink.size,
            "sha256": self.sink.sha.hexdigest(),
            "footer_sha256": self.sink.tail_sha.hexdigest(),
        }


class ShardWriter:
    """Streams one task's rows into part files of about `max_bytes` each.

    Rows are buffered up to one row group (about `ROW_GROUP_BYTES`, at most `ROW_GROUP_ROWS`) and written as it
    fills, so
    memory stays bounded whatever the task size; a file is closed once it reaches `max_bytes`
    (a single row larger than that gets a file of its own).
    """

    def __init__(self, out_uri: str, task: str, max_bytes: int):
        self.out_uri, self.task, self.max_bytes = out_uri, task, max(1, max_bytes)
        self.row_group_bytes = max(1, min(self.max_bytes // 4, ROW_GROUP_BYTES))
        self.shards: list[dict] = []
        self._rows: list[dict] = []
        self._buffered = 0
        self._file: _ParquetOut | None = None

    def add(self, row: dict) -> None:
        self._rows.append(row)
        self._buffered += len(row["image_bytes"] or b"") + len(row["conversations"]) + len(row["key"]) + 64
        written = self._file.sink.size if self._file else 0
        if (
            self._buffered >= self.row_group_bytes
            or len(self._rows) >= ROW_GROUP_ROWS
            or written + self._buffered >= self.max_bytes
        ):
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
            self._file = _ParquetOut(
                self.out_uri,
                relative,
                SCHEMA,
                compression=_COMPRESSION,
                write_statistics=_STATISTICS,
                use_dictionary=["task"],
            )
        self._file.write(pa.Table.from_pylist(self._rows, schema=SCHEMA))
        self._rows, self._buffered = [], 0
        if self._file.sink.size >= self.max_bytes:
            self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self.shards.append({**self._file.close(), "task": self.task})
            self._file = None


def write_index(out_uri: str, shards: list[dict], image_tokens: int) -> dict:
    """Write `index.parquet` from the small columns of `shards` (in their order); returns its manifest entry.

    Reads back one shard's small columns at a time, so memory stays bounded whatever the dataset size.
    """
    index = _ParquetOut(out_uri, INDEX, INDEX_SCHEMA, compression="ZSTD")
    for shard in shards:
        table = pq.read_table(
            storage.open_input(storage.join(out_uri, shard["path"])),
            columns=["key", "task", "est_tokens", "image_name"],
        )
        has_image = pc.not_equal(table.column("image_name"), "")
        images = pc.multiply(has_image.cast(pa.int32()), image_tokens)
        index.write(
            pa.table(
                {
                    "key": table.column("key"),
                    "task": table.column("task")
                    .cast(pa.string())
                    .dictionary_encode()
                    .cast(INDEX_SCHEMA.field("task").type),
                    "text_tokens": pc.subtract(table.column("est_tokens"), images),
                    "image": has_image,
                },
                schema=INDEX_SCHEMA,
            )
        )
    return index.close()


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
        raise ShardFormatError(
            f"{manifest_uri} does not exist: prepare the data first with "
            "`vlmtune data prepare --out URI` (or it did not finish)"
        ) from None
    except ValueError:
        raise ShardFormatError(f"{manifest_uri} is not valid JSON: re-run `vlmtune data prepare`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ShardFormatError(f"{manifest_uri}: not a {FORMAT!r} manifest (re-run `vlmtune data prepare`)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ShardFormatError(
            f"{manifest_uri}: format version {manifest.get('format_version')!r}; this vlmtune "
            f"reads version {FORMAT_VERSION} (re-run `vlmtune data prepare` on the raw data)"
        )
    return manifest


def check_files(uri: str, manifest: dict) -> None:
    """Every shard and the index exist with the sizes the manifest recorded (one listing, no reads).

    Raises:
        ShardIntegrityError: naming each missing or resized file (the first few) and how many there are.
    """
    sizes = {path: size for path, size, _ in storage.list_files(uri)}
    problems = []
    for entry in [*manifest["shards"], manifest["index"]]:
        size = sizes.get(entry["path"])
        if size is None:
            problems.append(f"{entry['path']} is missing")
        elif size != entry["bytes"]:
            problems.append(f"{entry['path']} has {size} bytes, the manifest says {entry['bytes']}")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise damaged(uri, f"{len(problems)} of {len(manifest['shards']) + 1} files are wrong ({shown})")


def open_parquet(uri: str, entry: dict) -> pq.ParquetFile:
    """A shard (or the index) opened for reading with its size and footer checked and page CRCs on.

    Raises:
        ShardIntegrityError: missing, another size, or another footer than the manifest recorded.
    """
    file_uri = storage.join(uri, entry["path"])
    try:
        handle = storage.open_input(file_uri)
    except FileNotFoundError:
        raise damaged(file_uri, "is missing") from None
    size = handle.size()
    if size != entry["bytes"]:
        raise damaged(file_uri, f"has {size} bytes, the manifest says {entry['bytes']}")
    metadata = _verified_footer(file_uri, handle, size, entry["footer_sha256"])
    return pq.ParquetFile(handle, metadata=metadata, page_checksum_verification=True)


def _verified_footer(file_uri: str, handle, size: int, expected: str) -> pq.FileMetaData:
    if size < 12:
        raise damaged(file_uri, "is too short to be Parquet")
    handle.seek(size - 8)
    trailer = handle.read(8)
    length = struct.unpack("<I", trailer[:4])[0]
    if trailer[4:] != b"PAR1" or length + 8 > size:
        raise damaged(file_uri, "has no Parquet footer")
    handle.seek(size - 8 - length)
    tail = handle.read(length) + trailer
    if hashlib.sha256(tail).hexdigest() != expected:
        raise damaged(file_uri, "has another footer than the manifest recorded")
    return pq.read_metadata(pa.BufferReader(tail))


def read_row_groups(file_uri: str, parquet: pq.ParquetFile, groups: list[int], columns: list[str]) -> pa.Table:
    """Row groups of an opened shard; a page whose CRC does not match becomes a ShardIntegrityError."""
    try:
        return parquet.read_row_groups(groups, columns=columns)
    except OSError as err:
        if "checksum" not in str(err).lower():
            raise  # I/O trouble (retried by the caller for remote stores), not damage
        raise damaged(file_uri, f"fails its page checksums ({err})") from None


def iter_shard_records(uri: str, tasks: list[str] | None = None) -> Iterator[dict]:
    """Every record of a prepared dataset in sample-id order, one row group in memory at a time (tools, tests).

    Records are `{"key", "task", "image", "image_bytes", "conversations", "est_tokens"}`: `image`
    names the source image ("" for text-only records) and its bytes are inline.
    """
    manifest = read_manifest(uri)
    for shard in manifest["shards"]:
        if tasks is not None and shard["task"] not in tasks:
            continue
        file_uri = storage.join(uri, shard["path"])
        parquet = storage.with_retry(file_uri, functools.partial(open_parquet, uri, shard))
        for group in range(parquet.num_row_groups):
            table = storage.with_retry(
                file_uri, functools.partial(read_row_groups, file_uri, parquet, [group], RECORD_COLUMNS)
            )
            for row in table.to_pylist():
                yield {
                    "key": row["key"],
                    "task": row["task"],
                    "image": row["image_name"],
                    "image_bytes": row["image_bytes"] or b"",
                    "conversations": row["conversations"],
                    "est_tokens": row["est_tokens"],
                }


def read_index(uri: str, manifest: dict, columns: list[str]) -> pa.Table:
    """Columns of the dataset's index (verified as it is read)."""
    entry = manifest["index"]
    parquet = open_parquet(uri, entry)
    table = read_row_groups(storage.join(uri, entry["path"]), parquet, list(range(parquet.num_row_groups)), columns)
    expected = sum(shard["rows"] for shard in manifest["shards"])
    if table.num_rows != expected:
        raise damaged(storage.join(uri, entry["path"]), f"lists {table.num_rows} samples, the shards hold {expected}")
    return table


def skipped_reasons(manifest: dict) -> dict[str, int]:
    """What prepare skipped as bad input, by reason (deliberate max-per-task cuts left out)."""
    return {reason: count for reason, count in manifest["skipped"]["reasons"].items() if reason != CAPPED}


def skipped_examples(manifest: dict) -> list[str]:
    return [example for example in manifest["skipped"]["examples"] if not example.endswith(CAPPED)]
