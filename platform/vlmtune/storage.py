"""Object-store I/O: local folders and s3:// through one pyarrow filesystem layer."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs


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
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint.split("://", 1)[-1],
            scheme="https" if endpoint.startswith("https") else "http",
            region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        )
        return fs, uri.removeprefix("s3://")
    return pafs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


def absolute(uri: str) -> str:
    """A URI that means the same thing from any working directory."""
    return uri if is_remote(uri) else str(Path(uri.removeprefix("file://")).expanduser().resolve())


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_file(path) as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as handle:
        handle.write(data)


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def upload_dir(local_dir: str | Path, uri: str) -> None:
    """Copy a local folder's contents to `uri` (a folder), replacing what is there."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir_contents(path)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(Path(local_dir).resolve()), path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)


def download_dir(uri: str, local_dir: str | Path) -> Path:
    fs, path = resolve(uri)
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(Path(local_dir).resolve()), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    return Path(local_dir)


def local_path(uri: str) -> Path | None:
    """The local path behind `uri`, or None for remote URIs."""
    return None if is_remote(uri) else Path(absolute(uri))
