"""Finding where a job left off, and which checkpoints to keep.

A checkpoint counts once its completion record verifies (`completion`). Resuming takes the newest one that
does; newer ones that do not (a kill or a full disk while writing, a truncated or flipped file) are named in a
warning and removed, since the resumed run writes those steps again. Older checkpoints are never touched on
resume: only once a newer checkpoint has been written and verified (so the resumed one was loaded and trained
on) does retention drop the ones past `keepCheckpoints`, counting the checkpoints of earlier runs of the job too.

The step of a checkpoint is the whole data position: workers start their slices of the sample plan there, at
whatever world size the resumed run has, so it neither repeats nor skips a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vlmtune import storage
from vlmtune.spec.layout import CHECKPOINT_RECORD, RunLayout, checkpoint_step
from vlmtune.train import completion
from vlmtune.train.ray_internals import forget_ray_checkpoints


def checkpoints_uri(output_uri: str) -> str:
    return RunLayout(output_uri).checkpoints


@dataclass(frozen=True)
class Latest:
    step: int
    uri: str
    world_size: int  # ranks that wrote it (a resumed run may have another number)


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a job continues from (None: from scratch), and the newer ones that did not count."""

    latest: Latest | None
    damaged: list[tuple[str, str]] = field(default_factory=list)
    """(checkpoint URI, why it does not count), newest first; removed, as the run writes those steps again."""

    def warnings(self) -> list[str]:
        """One line per damaged checkpoint, saying what the run does instead."""
        instead = f"resuming from {_name(self.latest.uri)}" if self.latest else "starting from scratch"
        return [f"{uri} does not count: {reason}; {instead}" for uri, reason in self.damaged]


def checkpoint_steps(output_uri: str) -> list[tuple[int, str]]:
    """(step, URI) of every checkpoint folder in the output, oldest first, complete or not."""
    root = checkpoints_uri(output_uri)
    found = [
        (step, storage.join(root, name))
        for name in storage.list_dir(root)
        if (step := checkpoint_step(name)) is not None
    ]
    return sorted(found)


def choose(
    candidates: list[tuple[int, str]], damage: Callable[[str], str | None]
) -> tuple[tuple[int, str] | None, list[tuple[str, str]]]:
    """The newest candidate `damage` finds nothing wrong with, and (URI, reason) of each newer one it did.

    Args:
        candidates: (step, URI), any order.
        damage: URI -> why it does not count, or None.
    """
    damaged = []
    for step, uri in sorted(candidates, reverse=True):
        reason = damage(uri)
        if reason is None:
            return (step, uri), damaged
        damaged.append((uri, reason))
    return None, damaged


def latest_checkpoint(output_uri: str) -> Latest | None:
    """The newest checkpoint whose files all match its completion record, or None."""
    chosen, _ = choose(checkpoint_steps(output_uri), completion.damage)
    return _latest(chosen)


def prepare_resume(output_uri: str) -> ResumePoint:
    """Pick the checkpoint to resume from and make it the one Ray Train starts from.

    Ray Train would restore from its own snapshot, which can lag behind a checkpoint written just before a kill
    (and may name checkpoints retention removed since), so the snapshot goes; the workers load the checkpoint
    picked here. Damaged checkpoints newer than it are removed; older ones stay until a newer one is verified.

    Raises:
        OSError: the store could not be read: nothing is removed.
    """
    chosen, damaged = choose(checkpoint_steps(output_uri), completion.damage)
    for uri, _ in damaged:
        storage.delete_dir(uri)
    forget_ray_checkpoints(checkpoints_uri(output_uri))
    return ResumePoint(_latest(chosen), damaged)


def prune(output_uri: str, keep: int, newest_step: int) -> list[str]:
    """Keep the newest `keep` completed checkpoints up to `newest_step` (just written and verified); delete older
    ones, complete or not. Checkpoints after `newest_step` are left alone.

    Returns:
        URIs of the checkpoints deleted.
    """
    kept, deleted = 0, []
    for step, uri in reversed(checkpoint_steps(output_uri)):
        if step > newest_step:
            continue
        if kept < keep and storage.exists(storage.join(uri, CHECKPOINT_RECORD)):
            kept += 1
            continue
        if step < newest_step:
            storage.delete_dir(uri)
            deleted.append(uri)
    return deleted


def clear_run(output_uri: str) -> None:
    """Forget earlier progress: checkpoints, sample ledger, metrics and TensorBoard files (`resume: never`)."""
    layout = RunLayout(output_uri)
    for folder in (layout.checkpoints, layout.samples, layout.tensorboard):
        storage.delete_dir(folder)
    storage.delete_file(layout.metrics)


def _latest(chosen: tuple[int, str] | None) -> Latest | None:
    if chosen is None:
        return None
    step, uri = chosen
    return Latest(step, uri, int(completion.read_record(uri).get("worldSize", 1)))


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]
