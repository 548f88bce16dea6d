"""What vlmtune relies on inside Ray Train, in one place, checked against the installed Ray.

Ray Train v2 keeps its own list of a run's checkpoints in the run's storage folder and restores from it when a run
of the same name starts. vlmtune picks the checkpoint to resume from itself (the newest one whose completion
record verifies, `train.resume`), so Ray's list must go before a resumed run starts: it can lag behind a checkpoint
written just before a kill, and name checkpoints that retention removed since. Ray offers no public call for this;
the file's name is Ray's constant, read from Ray when it is installed.
"""

from __future__ import annotations

from vlmtune import storage
from vlmtune.spec.layout import RAY_SNAPSHOT


def snapshot_name() -> str:
    """The name Ray Train gives its checkpoint list (Ray's constant when Ray is importable, else the pinned one)."""
    try:
        from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME
    except ImportError:  # another Ray layout: the name vlmtune was tested with
        return RAY_SNAPSHOT
    return CHECKPOINT_MANAGER_SNAPSHOT_FILENAME


def forget_ray_checkpoints(storage_folder_uri: str) -> None:
    """Remove Ray Train's checkpoint list from a run's storage folder, so Ray restores nothing on its own."""
    storage.delete_file(storage.join(storage_folder_uri, snapshot_name()))
