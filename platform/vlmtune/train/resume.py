"""Finding where a job left off: the newest complete checkpoint in its output.

Its step is the whole data position: workers start their slices of the sample plan there, at
whatever world size the resumed run has, so it neither repeats nor skips a sample and does not
preprocess consumed samples again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from vlmtune import storage
from vlmtune.train.checkpoint import TrainState, position_file

CHECKPOINTS = "checkpoints"
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints
_NAME = re.compile(r"checkpoint-(\d{6,})$")


def checkpoints_uri(output_uri: str) -> str:
    return storage.join(output_uri, CHECKPOINTS)


@dataclass(frozen=True)
class Latest:
    step: int
    uri: str
    world_size: int  # ranks that wrote it (a resumed run may have another number)


def latest_checkpoint(output_uri: str) -> Latest | None:
    """The newest checkpoint every one of its ranks finished writing, or None."""
    fs, root = storage.resolve(checkpoints_uri(output_uri))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return None
    steps = sorted((int(m.group(1)), info.path) for info in fs.get_file_info(pafs.FileSelector(root))
                   if info.type == pafs.FileType.Directory and (m := _NAME.search(info.path)))
    for _, path in reversed(steps):
        first = f"{path}/{position_file(0)}"
        if fs.get_file_info(first).type != pafs.FileType.File:
            continue
        state = TrainState(**json.loads(_read(fs, first)))
        files = [f"{path}/{position_file(rank)}" for rank in range(state.world_size)]
        if all(fs.get_file_info(f).type == pafs.FileType.File for f in files):
            uri = f"s3://{path}" if output_uri.startswith("s3://") else path
            return Latest(state.step, uri, state.world_size)
    return None


def prepare_resume(output_uri: str) -> Latest | None:
    """Pick the checkpoint to resume from and make it the only one Ray Train will see.

    Ray Train would restore from its own snapshot, which can lag behind a checkpoint written just
    before a kill; the workers start the sample plan at the checkpoint picked here, so the snapshot
    goes, and so do the other checkpoints (partial ones newer than it, and older ones).
    """
    latest = latest_checkpoint(output_uri)
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
    """Forget earlier progress: checkpoints, sample ledger, metrics and TensorBoard files (`resume: never`)."""
    fs, root = storage.resolve(output_uri)
    for name in (CHECKPOINTS, "samples", "tensorboard"):
        if fs.get_file_info(f"{root}/{name}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"{root}/{name}")
    if fs.get_file_info(f"{root}/metrics.jsonl").type == pafs.FileType.File:
        fs.delete_file(f"{root}/metrics.jsonl")


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_file(path) as handle:
        return handle.read()
