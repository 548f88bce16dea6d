"""Finding where a job left off: the newest complete checkpoint in its output, and each rank's position.

The driver uses it to start each rank's sample stream after what was already trained, so a resumed
run neither repeats nor skips a sample and does not preprocess consumed samples again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from vlmtune import storage
from vlmtune.train.checkpoint import TrainState

CHECKPOINTS = "checkpoints"
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints
_NAME = re.compile(r"checkpoint-(\d{6,})$")


def checkpoints_uri(output_uri: str) -> str:
    return storage.join(output_uri, CHECKPOINTS)


@dataclass(frozen=True)
class Latest:
    step: int
    uri: str
    positions: list[TrainState]


def latest_checkpoint(output_uri: str, workers: int) -> Latest | None:
    """The newest checkpoint that holds every rank's position, or None."""
    fs, root = storage.resolve(checkpoints_uri(output_uri))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return None
    steps = sorted((int(m.group(1)), info.path) for info in fs.get_file_info(pafs.FileSelector(root))
                   if info.type == pafs.FileType.Directory and (m := _NAME.search(info.path)))
    for step, path in reversed(steps):
        files = [f"{path}/position_rank{rank}.json" for rank in range(workers)]
        if all(fs.get_file_info(f).type == pafs.FileType.File for f in files):
            uri = f"s3://{path}" if output_uri.startswith("s3://") else path
            return Latest(step, uri, [TrainState(**json.loads(_read(fs, f))) for f in files])
    return None


def prepare_resume(output_uri: str, workers: int) -> Latest | None:
    """Pick the checkpoint to resume from and make it the only one Ray Train will see.

    Ray Train would restore from its own snapshot, which can lag behind a checkpoint written just
    before a kill; the driver cuts the sample streams at the checkpoint it picked, so the snapshot
    goes, and so do the other checkpoints (partial ones newer than it, and older ones).
    """
    latest = latest_checkpoint(output_uri, workers)
    fs, root = storage.resolve(checkpoints_uri(output_uri))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return latest
    for info in fs.get_file_info(pafs.FileSelector(root)):
        if info.base_name == SNAPSHOT and info.type == pafs.FileType.File:
            fs.delete_file(info.path)
        elif info.type == pafs.FileType.Directory and _NAME.search(info.path) and (
                latest is None or not latest.uri.endswith(info.base_name)):
            fs.delete_dir(info.path)
    return latest


def clear_run(output_uri: str) -> None:
    """Forget earlier progress: checkpoints, sample ledger and metrics (`resume: never`)."""
    fs, root = storage.resolve(output_uri)
    for name in (CHECKPOINTS, "samples"):
        if fs.get_file_info(f"{root}/{name}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"{root}/{name}")
    if fs.get_file_info(f"{root}/metrics.jsonl").type == pafs.FileType.File:
        fs.delete_file(f"{root}/metrics.jsonl")


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_file(path) as handle:
        return handle.read()
