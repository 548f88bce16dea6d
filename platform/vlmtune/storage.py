"""Object-store I/O: local folders and s3:// through one pyarrow filesystem layer.

Remote reads and whole-object writes retry transient failures (connection refused or reset,
throttling, 5xx) with bounded exponential backoff, on top of the AWS SDK's own per-request
retries: a store that restarts or blips for a few seconds costs a pause, not a run. Missing
objects and permission errors are not retried; they will not heal by waiting.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.fs as pafs

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for remote I/O: `attempts` tries, delays doubling up to a cap."""

    attempts: int = 6
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delays(self) -> list[float]:
        """Sleeps between tries (attempts - 1 of them); 0.25+0.5+1+2+4 = 7.75 s by default."""
        return [min(self.max_delay_s, self.first_delay_s * 2**i) for i in range(max(0, self.attempts - 1))]


REMOTE_RETRY = RetryPolicy()
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and in-filesystem path for a local path, file:// or s3:// URI.

    S3 endpoints and credentials come from the usual AWS environment variables
    (AWS_ENDPOINT_URL for MinIO and other S3-compatible stores).
    """
    if not is_remote(uri):
        return pafs.LocalFileSystem(), str(Path(uri.removeprefix("file://")).expanduser().resolve())
    if uri.startswith("s3://") and os.environ.get("AWS_ENDPOINT_URL"):
        fs = _endpoint_s3(
            os.environ["AWS_ENDPOINT_URL"],
            os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
            # Part of the cache key only: the SDK reads credentials and profile from the environment.
            os.environ.get("AWS_ACCESS_KEY_ID"),
            os.environ.get("AWS_PROFILE"),
        )
        return fs, uri.removeprefix("s3://")
    return pafs.FileSystem.from_uri(uri)


@functools.lru_cache(maxsize=8)
def _endpoint_s3(endpoint: str, region: str, key_id: str | None, profile: str | None) -> pafs.S3FileSystem:
    # One client per endpoint and identity: its connection pool is reused across millions of reads.
    return pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[-1],
        scheme="https" if endpoint.startswith("https") else "http",
        region=region,
        connect_timeout=5,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    )


# pyarrow.fs registered `ensure_s3_finalized` when this module imported it; atexit runs handlers in reverse, so the
# cached S3 clients are dropped before Arrow shuts the AWS SDK down. A client that outlives the SDK is destroyed
# during interpreter teardown instead, which Arrow documents as a cause of crashes at exit.
atexit.register(_endpoint_s3.cache_clear)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


def absolute(uri: str) -> str:
    """A URI that means the same thing from any working directory."""
    return uri if is_remote(uri) else str(Path(uri.removeprefix("file://")).expanduser().resolve())


def with_retry(uri: str, action: Callable[[], T], policy: RetryPolicy | None = None) -> T:
    """Run `action` (an I/O call on `uri`), retrying transient errors when `uri` is remote.

    Args:
        policy: defaults to the module's REMOTE_RETRY, looked up at call time.

    Raises:
        OSError: the last error once the attempts are spent, or at once when it is permanent.
    """
    if not is_remote(uri):
        return action()
    for delay in (policy or REMOTE_RETRY).delays():
        try:
            return action()
        except _PERMANENT:
            raise
        except OSError:
            time.sleep(delay)
    return action()


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)

    def read() -> bytes:
        with fs.open_input_file(path) as handle:
            return handle.read()

    return with_retry(uri, read)


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def write() -> None:
        with fs.open_output_stream(path) as handle:
            handle.write(data)

    with_retry(uri, write)


def open_input(uri: str):
    """A seekable file (pyarrow RandomAccessFile) for random access, e.g. members of a zip."""
    fs, path = resolve(uri)
    return with_retry(uri, lambda: fs.open_input_file(path))


def open_output(uri: str):
    """A write stream for `uri`, its folder created first. Not retried: a stream cannot rewind."""
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    return fs.open_output_stream(path)


def sha256_file(uri: str, chunk_bytes: int = 8 << 20) -> str:
    """Hex sha256 of a file, streamed (annotation files can be gigabytes)."""
    fs, path = resolve(uri)

    def digest() -> str:
        sha = hashlib.sha256()
        with fs.open_input_stream(path) as handle:
            while chunk := handle.read(chunk_bytes):
                sha.update(chunk)
        return sha.hexdigest()

    return with_retry(uri, digest)


def list_files(uri: str) -> Iterator[tuple[str, int, float]]:
    """(path relative to `uri`, size in bytes, mtime in seconds) of every file below `uri`, sorted."""
    fs, root = resolve(uri)
    infos = with_retry(uri, lambda: fs.get_file_info(pafs.FileSelector(root, recursive=True)))
    for info in sorted(infos, key=lambda item: item.path):
        if info.type == pafs.FileType.File:
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            yield info.path[len(root) :].lstrip("/"), info.size, mtime


def delete_dir(uri: str) -> None:
    """Remove a folder and everything below it; nothing happens when it does not exist."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def delete_file(uri: str) -> None:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_file(path)


def list_dir(uri: str) -> list[str]:
    """Names of the entries directly inside folder `uri` (empty when it does not exist)."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    return sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(path)))


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def upload_dir(local_dir: str | Path, uri: str) -> None:
    """Copy a local folder's contents to `uri` (a folder), replacing what is there."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir_contents(path)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(
        str(Path(local_dir).resolve()), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )


def download_dir(uri: str, local_dir: str | Path) -> Path:
    fs, path = resolve(uri)
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(
        path, str(Path(local_dir).resolve()), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
    )
    return Path(local_dir)


def local_path(uri: str) -> Path | None:
    """The local path behind `uri`, or None for remote URIs."""
    return None if is_remote(uri) else Path(absolute(uri))
