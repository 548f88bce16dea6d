"""Reading planned samples from the shards where they live: a Ray Data datasource over one rank's sample ids.

Each read task takes a run of consecutive ids of the rank's slice of the plan, groups them by shard
and row group, reads each needed row group once (only the columns preprocessing uses, with every
page's CRC checked against the one written by `data prepare`), and emits the rows in plan order.
Shards are opened once per process: a shard's size and footer are checked against the manifest
when it is first opened, and its footer is kept for later reads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from vlmtune import storage
from vlmtune.data.catalog import Shard, ShardTable
from vlmtune.data.shards import TRAINING_COLUMNS, open_parquet, read_row_groups

ROWS_PER_READ = 64  # samples per read task: small enough that the first micro-batches arrive in seconds
MAX_READ_TASKS = 8192  # a rank's whole epoch is planned up front: longer streams get longer read tasks


class PlannedRows(Datasource):
    """The rows of `ids` (one rank's slice of the sample plan), in that order."""

    def __init__(self, table: ShardTable, ids: np.ndarray, rows_per_read: int = ROWS_PER_READ):
        self._table = table
        self._ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._rows_per_read = max(1, rows_per_read, -(-len(self._ids) // MAX_READ_TASKS))

    @property
    def read_tasks(self) -> int:
        return max(1, -(-len(self._ids) // self._rows_per_read))

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context=None
    ) -> list[ReadTask]:
        """One task per `rows_per_read` ids, in plan order (the plan decides the parallelism, not Ray)."""
        # The shard table goes into the object store once: captured by value, every task would carry its own
        # copy (~30 KB at 191 tasks; 8,192 tasks x 30 KB = 240 MB serialized per rank at Vision-Flan scale).
        table = ray.put(self._table) if ray.is_initialized() else self._table
        tasks = []
        for start in range(0, len(self._ids), self._rows_per_read):
            chunk = self._ids[start : start + self._rows_per_read]
            metadata = BlockMetadata(num_rows=len(chunk), size_bytes=None, input_files=None, exec_stats=None)
            tasks.append(
                ReadTask(functools.partial(_read_task, table, chunk), metadata, per_task_row_limit=per_task_row_limit)
            )
        return tasks

    def get_name(self) -> str:
        return "PlannedRows"


def _read_task(table: ShardTable | ray.ObjectRef, ids: np.ndarray) -> Iterable[pa.Table]:
    return [read_rows(_shard_table(table) if isinstance(table, ray.ObjectRef) else table, ids)]


@functools.lru_cache(maxsize=8)
def _shard_table(ref: ray.ObjectRef) -> ShardTable:
    return ray.get(ref)  # once per process and dataset: read tasks of one stream share the table


def read_rows(table: ShardTable, ids: np.ndarray) -> pa.Table:
    """The training columns of samples `ids`, in the order given (ids may repeat).

    Raises:
        ShardIntegrityError: a shard is missing, resized, or fails a footer or page checksum.
    """
    shard_of, row_of = table.locate(np.asarray(ids, dtype=np.int64))
    pieces, positions = [], []
    for shard in np.unique(shard_of):
        where = np.flatnonzero(shard_of == shard)
        pieces.append(_shard_rows(table.shards[shard], row_of[where]))
        positions.append(where)
    combined = pa.concat_tables(pieces)
    return combined.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))


def _shard_rows(shard: Shard, rows: np.ndarray) -> pa.Table:
    parquet, starts = _opened(shard)
    group_of = np.searchsorted(starts, rows, side="right") - 1
    pieces, order = [], []
    for group in np.unique(group_of):
        where = np.flatnonzero(group_of == group)
        columns = storage.with_retry(
            shard.uri, functools.partial(read_row_groups, shard.uri, parquet, [int(group)], TRAINING_COLUMNS)
        )
        pieces.append(columns.take(pa.array(rows[where] - starts[group])))
        order.append(where)
    combined = pa.concat_tables(pieces)
    return combined.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))


@functools.lru_cache(maxsize=256)
def _opened(shard: Shard) -> tuple[pq.ParquetFile, np.ndarray]:
    """The shard opened and checked (size, footer), with the first row of each row group; once per process."""
    parquet = storage.with_retry(shard.uri, lambda: open_parquet(shard.dataset, shard.entry()))
    counts = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    return parquet, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
