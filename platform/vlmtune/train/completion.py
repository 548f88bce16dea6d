"""Completion records: a checkpoint counts only when `complete.json`, written last, lists every file with its
size and sha256 and the stored files match it.

Who writes it, and when: every rank hashes its own share of the checkpoint in its local folder before
`ray.train.report` uploads it (no file is read back from storage), and Ray Train's report returns on a rank only
once that rank's upload has finished (synchronous upload mode). After the report, the ranks gather their file
lists (a collective, so every rank's upload is done by then); rank 0 checks the sizes against one listing of
the stored folder and writes the record. Why not the driver: `trainer.fit()` blocks it until training ends, and
Ray Train's controller (where a callback would run) only learns of reports asynchronously; in the loop, the
record is on storage before the next step starts, so a stop right after a checkpoint is always resumable.

On resume the driver verifies sizes and checksums (`damage`) before trusting a checkpoint: a full disk, a
killed upload or a flipped bit makes the checkpoint not count, and the one before it is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlmtune import storage
from vlmtune.spec.layout import CHECKPOINT_RECORD

FORMAT = "vlmtune-checkpoint"
FORMAT_VERSION = 1
_HASH_THREADS = 8  # object stores serve parallel reads; local disks do not mind


class CheckpointIncomplete(RuntimeError):
    """The stored checkpoint lacks files, or holds other sizes, than its ranks wrote."""

    def __init__(self, uri: str, problems: Sequence[str]):
        self.uri, self.problems = uri, list(problems)
        super().__init__(
            f"{uri}: {'; '.join(self.problems[:3])} after the upload; the checkpoint does not count "
            "(check free space and the store's health)"
        )

    def __reduce__(self):
        return (CheckpointIncomplete, (self.uri, self.problems))


def describe_folder(folder: str | Path) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} of every file below a local folder (one rank's share)."""
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): {"bytes": path.stat().st_size, "sha256": _sha256_local(path)}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def merge_shares(shares: Sequence[Mapping[str, dict]]) -> tuple[dict[str, dict], list[str]]:
    """Every rank's files in one listing, and the paths that ranks wrote with different contents (which copy
    the store kept is then only known by reading it back)."""
    merged: dict[str, dict] = {}
    conflicts = []
    for share in shares:
        for path, entry in share.items():
            if path in merged and merged[path] != entry and path not in conflicts:
                conflicts.append(path)
            merged.setdefault(path, dict(entry))
    return merged, conflicts


def completion_record(step: int, world_size: int, files: Mapping[str, dict]) -> dict:
    return {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "step": step,
        "worldSize": world_size,
        "files": dict(sorted(files.items())),
    }


def size_problems(files: Mapping[str, dict], stored: Mapping[str, int]) -> list[str]:
    """What differs between the files a record lists and a listing of the stored folder (path -> bytes)."""
    problems = []
    for path, entry in files.items():
        if path not in stored:
            problems.append(f"{path} is missing")
        elif stored[path] != entry["bytes"]:
            problems.append(f"{path} has {stored[path]} bytes, not {entry['bytes']}")
    return problems


def seal(checkpoint_uri: str, step: int, world_size: int, shares: Sequence[Mapping[str, dict]]) -> dict:
    """Write the completion record of a checkpoint whose ranks have all uploaded their shares (rank 0 does this).

    Returns:
        The record written.

    Raises:
        CheckpointIncomplete: the stored folder lacks a file or holds another size.
    """
    files, conflicts = merge_shares(shares)
    for path in conflicts:  # identical names from several ranks with different contents: the store kept one
        uri = storage.join(checkpoint_uri, path)
        files[path] = {"bytes": _stored_sizes(checkpoint_uri).get(path, -1), "sha256": storage.sha256_file(uri)}
    problems = size_problems(files, _stored_sizes(checkpoint_uri))
    if problems:
        raise CheckpointIncomplete(checkpoint_uri, problems)
    record = completion_record(step, world_size, files)
    storage.write_bytes(storage.join(checkpoint_uri, CHECKPOINT_RECORD), json.dumps(record, indent=1).encode())
    return record


def unseal(checkpoint_uri: str) -> None:
    """Remove a checkpoint's record before its folder is written again (a restart replaying steps): until the new
    record is written, the folder does not count."""
    storage.delete_file(storage.join(checkpoint_uri, CHECKPOINT_RECORD))


def read_record(checkpoint_uri: str) -> dict:
    """The checkpoint's completion record.

    Raises:
        FileNotFoundError: there is none.
        ValueError: it is not a record this version reads.
    """
    record = json.loads(storage.read_bytes(storage.join(checkpoint_uri, CHECKPOINT_RECORD)))
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("files"), dict):
        raise ValueError("not a completion record")
    return record


def damage(checkpoint_uri: str, checksums: bool = True) -> str | None:
    """Why the checkpoint does not count (one line), or None when every file matches its record.

    Raises:
        OSError: the store could not be read (after retries): nothing is known about the checkpoint.
    """
    try:
        record = read_record(checkpoint_uri)
    except FileNotFoundError:
        return "no completion record (its writing was interrupted)"
    except (ValueError, UnicodeDecodeError):
        return "its completion record is unreadable"
    problems = size_problems(record["files"], _stored_sizes(checkpoint_uri))
    if problems or not checksums:
        return "; ".join(problems[:3]) or None
    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        digests = dict(
            zip(record["files"], pool.map(lambda path: _sha256_stored(checkpoint_uri, path), record["files"]))
        )
    changed = [path for path, entry in record["files"].items() if digests[path] != entry["sha256"]]
    return "; ".join(f"{path} does not match its sha256" for path in changed[:3]) or None


def _stored_sizes(checkpoint_uri: str) -> dict[str, int]:
    return {path: size for path, size, _ in storage.list_files(checkpoint_uri)}


def _sha256_stored(checkpoint_uri: str, path: str) -> str | None:
    try:
        return storage.sha256_file(storage.join(checkpoint_uri, path))
    except FileNotFoundError:  # deleted since the listing
        return None


def _sha256_local(path: Path, chunk_bytes: int = 8 << 20) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            sha.update(chunk)
    return sha.hexdigest()
