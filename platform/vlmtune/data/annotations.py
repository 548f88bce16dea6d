"""Raw annotation records, streamed: a JSON list (or JSON Lines) file, or a Hugging Face `datasets` dataset.

A 983 MB Vision-Flan annotation file is never parsed whole: elements of the top-level list are
decoded one at a time from a sliding text buffer, so memory holds one chunk and one record.
Hugging Face datasets (a folder written by `save_to_disk`, a local Hub snapshot, or `hf://ORG/NAME`
from the Hub cache) are iterated row by row, images left undecoded.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vlmtune import storage
from vlmtune.data.errors import DataError

CHUNK_CHARS = 1 << 20
MAX_RECORD_CHARS = 64 << 20  # a record that does not parse within this much text is broken, not unfinished
_WHITESPACE = " \t\r\n"


class AnnotationError(DataError):
    """The annotation source cannot be read as records; the message names the place and the fix."""


# ---------------------------------------------------------------- JSON files


def iter_json_records(uri: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[object]:
    """The elements of the JSON list in `uri` (local or s3://), or the objects of a JSON Lines file.

    Raises:
        AnnotationError: not UTF-8, not a list, or not valid JSON (with the record number and offset).
    """
    decoder = json.JSONDecoder()
    text = _TextStream(uri, chunk_chars)
    position = text.skip_whitespace(0)
    first = text.char(position)
    if first == "[":
        closing = "]"
        position += 1
    elif first == "{":
        closing = None  # JSON Lines: objects separated by whitespace, no brackets
    elif first == "":
        return
    else:
        raise AnnotationError(f"{uri}: expected a JSON list of records (or JSON Lines), found {first!r} at the start")
    index = 0
    while True:
        position = text.skip_whitespace(position)
        char = text.char(position)
        if closing and char == closing:
            return
        if char == "":
            if closing:
                raise AnnotationError(f"{uri}: the JSON list ends without `]` after record {index} (truncated file?)")
            return
        if closing and index and char != ",":
            raise AnnotationError(
                f"{uri}: expected `,` or `]` after record {index - 1} at character {text.offset(position)}"
            )
        if closing and index:
            position = text.skip_whitespace(position + 1)
        value, position = text.decode(decoder, position, index)
        yield value
        index += 1


class _TextStream:
    """A sliding window of decoded text over a byte stream; positions are relative to the window."""

    def __init__(self, uri: str, chunk_chars: int):
        self.uri = uri
        fs, path = storage.resolve(uri)
        try:
            self._stream = storage.with_retry(uri, lambda: fs.open_input_stream(path))
        except FileNotFoundError:
            raise AnnotationError(f"{uri}: no such file") from None
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._chunk = chunk_chars
        self.buffer = ""
        self._dropped = 0  # characters discarded before the window
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self._stream.read(self._chunk)
        try:
            self.buffer += self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            raise AnnotationError(
                f"{self.uri}: not UTF-8 text (byte {err.start} of a chunk near character "
                f"{self._dropped + len(self.buffer)}); re-save the file as UTF-8"
            ) from None
        if not data:
            self.eof = True
            self._stream.close()
        return True

    def char(self, position: int) -> str:
        while position >= len(self.buffer):
            if not self._more():
                return ""
        return self.buffer[position]

    def skip_whitespace(self, position: int) -> int:
        while self.char(position) in _WHITESPACE and self.char(position) != "":
            position += 1
        return position

    def offset(self, position: int) -> int:
        return self._dropped + position

    def decode(self, decoder: json.JSONDecoder, position: int, index: int) -> tuple[object, int]:
        """Decode one value at `position`; returns it and the position after it (the window may slide)."""
        if position > self._chunk:  # drop what was consumed, so the window stays about one chunk
            self.buffer, self._dropped = self.buffer[position:], self._dropped + position
            position = 0
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, position)
                # A value that ends exactly at the window's end may continue (a number cut in two).
                if end < len(self.buffer) or self.eof:
                    return value, end
            except json.JSONDecodeError as err:
                if self.eof or len(self.buffer) - position > MAX_RECORD_CHARS:
                    raise AnnotationError(
                        f"{self.uri}: record {index} is not valid JSON ({err.msg} at character "
                        f"{self._dropped + err.pos})"
                    ) from None
            self._more()


# ---------------------------------------------------------------- Hugging Face datasets


def is_hf_dataset(uri: str) -> bool:
    """`hf://...`, a folder written by `Dataset.save_to_disk`, or a local Hub snapshot folder."""
    if uri.startswith("hf://"):
        return True
    local = storage.local_path(uri)
    return local is not None and local.is_dir()


def iter_hf_records(uri: str, split: str = "train") -> Iterator[dict]:
    """Rows of a Hugging Face dataset as plain dicts, streamed; an `Image` column stays undecoded.

    An undecoded image is `{"bytes": ..., "path": ...}`; `image_of` turns it into bytes or a name.

    Raises:
        AnnotationError: the dataset or split does not exist, or the Hub cache lacks it while offline.
    """
    dataset = _open_hf(uri, split)
    from datasets import Image

    features = dataset.features or {}
    for name, feature in features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
    yield from dataset


def _open_hf(uri: str, split: str):
    import datasets

    datasets.disable_progress_bars()
    folder = _hub_snapshot(uri) if uri.startswith("hf://") else Path(storage.absolute(uri))
    try:
        if (folder / "state.json").exists() or (folder / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(folder))  # memory-mapped Arrow: nothing is read up front
            if isinstance(loaded, datasets.DatasetDict):
                loaded = _split_of(loaded, split, uri)
            return loaded.to_iterable_dataset()
        return datasets.load_dataset(str(folder), split=split, streaming=True)
    except (ValueError, FileNotFoundError) as err:
        raise AnnotationError(f"{uri}: cannot open split {split!r} as a Hugging Face dataset ({err})") from None


def _split_of(splits, split: str, uri: str):
    if split not in splits:
        raise AnnotationError(f"{uri}: no split {split!r}; splits: {', '.join(splits)} (use --split)")
    return splits[split]


def _hub_snapshot(uri: str) -> Path:
    """The local snapshot of `hf://[datasets/]ORG/NAME[@REVISION]`, downloaded unless HF_HUB_OFFLINE is set."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = uri.removeprefix("hf://").removeprefix("datasets/")
    repo, _, revision = repo.partition("@")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        # The cache folder is read here, not at import: HF_HUB_CACHE may be set after huggingface_hub was imported.
        return Path(
            snapshot_download(
                repo,
                repo_type="dataset",
                revision=revision or None,
                local_files_only=offline,
                cache_dir=os.environ.get("HF_HUB_CACHE"),
            )
        )
    except LocalEntryNotFoundError:
        raise AnnotationError(
            f"{uri}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it once "
            "with network access (or unset HF_HUB_OFFLINE)"
        ) from None


def image_of(value: object) -> tuple[str, bytes | None]:
    """(image name, inline bytes) of a record's `image` field: a path, or an undecoded datasets Image."""
    if isinstance(value, dict):
        return str(value.get("path") or ""), value.get("bytes")
    return (value if isinstance(value, str) else ""), None


def fingerprint(uri: str) -> str:
    """Content fingerprint of an annotation source: sha256 of a file; sizes and mtimes of a dataset's files."""
    if not is_hf_dataset(uri):
        return storage.sha256_file(uri)
    folder = _hub_snapshot(uri) if uri.startswith("hf://") else Path(storage.absolute(uri))
    return folder_fingerprint(str(folder))


def folder_fingerprint(uri: str) -> str:
    """sha256 over (path, size, mtime) of every file below `uri`; local folders are walked without a full listing."""
    sha = hashlib.sha256()
    local = storage.local_path(uri)
    entries = _walk(local, "") if local is not None else storage.list_files(uri)
    for path, size, mtime in entries:
        sha.update(f"{path}\t{size}\t{mtime}\n".encode())
    return sha.hexdigest()


def _walk(root: Path, prefix: str) -> Iterator[tuple[str, int, float]]:
    """(relative path, size, mtime) below `root` in sorted order, one directory listing in memory at a time."""
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in entries:
        name = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), f"{name}/")
        elif entry.is_file():
            stat = entry.stat()
            yield name, stat.st_size, stat.st_mtime
