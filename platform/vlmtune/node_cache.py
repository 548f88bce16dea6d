"""Per-node cache of remote model files: each version of an s3:// folder or file is downloaded once per node.

A copy is keyed by the URI and what its listing says about every file (path, size, mtime), so a
re-uploaded model is fetched again instead of served stale. A file lock makes the workers of one
node share a download: the first takes the lock and downloads into a scratch folder that is
renamed into place when complete; the others wait on the lock and find it there. Copies are
never evicted; delete `$VLMTUNE_CACHE` (default ~/.cache/vlmtune) to reclaim the space.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from vlmtune import storage

# What `weights=False` leaves out: the driver and data workers need config and tokenizer only.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


@dataclass(frozen=True)
class Fetched:
    path: Path
    """The local copy: a folder for a folder URI, a file for a file URI."""
    downloaded: bool
    """Whether this call downloaded it (False: another process or an earlier call already had)."""


def cache_root() -> Path:
    return Path(os.environ.get("VLMTUNE_CACHE", Path.home() / ".cache" / "vlmtune"))


def local_copy(uri: str, weights: bool = True) -> str:
    """A local path for `uri`: local paths and hub ids pass through, s3:// is downloaded once per node.

    Args:
        weights: False fetches everything but weight files (config, tokenizer, processor).
    """
    if not storage.is_remote(uri):
        local = storage.local_path(uri)
        return str(local) if local is not None and local.exists() else uri
    return str(fetch(uri, weights).path)


def fetch(uri: str, weights: bool = True) -> Fetched:
    """Download remote `uri` (a folder or one file) into this node's cache unless it is there already.

    Raises:
        FileNotFoundError: nothing exists at `uri`.
    """
    files, is_file = remote_files(uri)
    if not weights:
        files = [entry for entry in files if not entry[0].endswith(WEIGHT_SUFFIXES)]
    key = hashlib.sha256(json.dumps([uri, weights, files]).encode()).hexdigest()[:24]
    folder = cache_root() / "remote" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        downloaded = not folder.exists()
        if downloaded:
            _download(uri, [name for name, _, _ in files], is_file, folder)
    return Fetched(folder / files[0][0] if is_file else folder, downloaded)


def remote_files(uri: str) -> tuple[list[tuple[str, int, float]], bool]:
    """(relative name, size, mtime) of each file at `uri`, and whether `uri` is a single file."""
    fs, path = storage.resolve(uri)
    info = storage.with_retry(uri, lambda: fs.get_file_info(path))
    if info.type == pafs.FileType.File:
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        return [(info.base_name, info.size, mtime)], True
    files = list(storage.list_files(uri)) if info.type == pafs.FileType.Directory else []
    if not files:
        raise FileNotFoundError(f"{uri}: no such file or folder (or the folder is empty)")
    return files, False


def _download(uri: str, names: list[str], is_file: bool, folder: Path) -> None:
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)  # left by a download that died
    scratch.mkdir()
    for name in names:
        source = uri if is_file else storage.join(uri, name)
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fs, path = storage.resolve(source)
        storage.with_retry(source, functools.partial(_copy_file, fs, path, target))
    scratch.rename(folder)  # atomic: a copy in the cache is always complete


def _copy_file(fs: pafs.FileSystem, path: str, target: Path) -> None:
    pafs.copy_files(path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
