"""A damaged shard's one line survives every wrapper Ray puts around it on its way to the driver."""

from __future__ import annotations

import pickle

from vlmtune.data.errors import DataError, find_data_error
from vlmtune.data.shards import ShardIntegrityError

LINE = "shard s3://bucket/shards/task=vqa/part-00003.parquet fails its page checksums; run `vlmtune data prepare` again"


class TaskError(Exception):
    """What a Ray task error looks like to find_data_error: the original under `cause`, a traceback as text."""

    def __init__(self, cause: BaseException):
        super().__init__(f"ray::ReadPlannedRows() (pid=1)\nTraceback ...\n{cause}")
        self.cause = cause


class WorkerGroupError(Exception):
    """Ray Train's: each rank's exception in `worker_failures`."""

    def __init__(self, failures: dict):
        super().__init__("Training failed due to worker errors")
        self.worker_failures = failures


def test_the_shard_line_is_found_through_task_train_and_chained_wrappers():
    damaged = ShardIntegrityError(LINE + "\nRay Data: set DataContext.max_errored_blocks to skip it")
    try:
        try:
            raise TaskError(damaged)
        except TaskError as task:
            raise RuntimeError("Dataset execution failed") from task
    except RuntimeError as chained:
        outer = WorkerGroupError({0: ValueError("other rank"), 1: chained})
    found = find_data_error(outer)
    assert isinstance(found, ShardIntegrityError) and str(found) == LINE
    assert str(pickle.loads(pickle.dumps(found))) == LINE  # crosses Ray's process boundary intact


def test_errors_without_data_damage_are_left_alone():
    assert find_data_error(None) is None
    assert find_data_error(WorkerGroupError({0: TaskError(OSError("connection reset"))})) is None
    looped = ValueError("a")
    looped.__context__ = RuntimeError("b")
    looped.__context__.__context__ = looped
    assert find_data_error(looped) is None
    assert isinstance(find_data_error(DataError("bad record")), DataError)
