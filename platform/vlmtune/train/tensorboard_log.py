"""TensorBoard event files of a run under `<output>/tensorboard/`, for local and object-store outputs alike.

tensorboardX's event writer fills a local temporary file; after every report the file is copied to
the output, so `tensorboard --logdir <output>/tensorboard` (s3:// included) shows the run as it goes.
Events are written synchronously (`SummaryWriter.flush` leaves queued events to a background
thread, so an uploaded copy could miss the last report). Each run of a job writes its own event
file; it starts with TensorBoard's purge marker at the run's first step, so steps an interrupted run
logged after its last checkpoint are dropped instead of showing twice.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vlmtune import storage
from vlmtune.spec.layout import RunLayout
from vlmtune.train.metrics import SCALARS


def scalar_tag(name: str) -> str:
    """The tag a metric-row field is written under; null values (mfu on CPUs) are left out."""
    return f"train/{name}"


class TensorBoardLog:
    """One run's event file; rank 0 writes it."""

    def __init__(self, output_uri: str, start_step: int):
        """Args:
        start_step: the step the run resumes after (0 for a fresh run).
        """
        from tensorboardX.event_file_writer import EventsWriter  # the `train` extra
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        self._local = Path(tempfile.mkdtemp(prefix="vlmtune-tensorboard-"))
        self._target = RunLayout(output_uri).tensorboard
        # The suffix keeps two runs started in the same second on one host apart.
        self._events = EventsWriter(str(self._local / "events"), filename_suffix=f".from-step-{start_step}")
        self._events.write_event(
            Event(wall_time=time.time(), step=start_step + 1, session_log=SessionLog(status=SessionLog.START))
        )

    def write(self, row: dict) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        now = time.time()
        for name in SCALARS:
            if row.get(name) is not None:
                self._events.write_event(
                    Event(wall_time=now, step=row["step"], summary=scalar(scalar_tag(name), float(row[name])))
                )
        self._events.flush()
        self._upload()

    def close(self, succeeded: bool = True) -> None:  # noqa: ARG002 — event files read the same either way
        self._events.close()
        self._upload()
        shutil.rmtree(self._local, ignore_errors=True)

    def _upload(self) -> None:
        for path in self._local.iterdir():
            storage.write_bytes(storage.join(self._target, path.name), path.read_bytes())
