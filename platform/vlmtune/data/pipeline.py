"""The Ray Data side of training: one rank's slice of the sample plan -> a preprocessed, ordered dataset."""

from __future__ import annotations

import numpy as np
import ray

from vlmtune.data.catalog import ShardTable
from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
from vlmtune.data.ray_data_internals import pace_scheduling_loop
from vlmtune.data.reader import ROWS_PER_READ, PlannedRows


def build_rank_dataset(
    table: ShardTable,
    ids: np.ndarray,
    config: ProcessorConfig,
    *,
    batch_size: int = 16,
    concurrency: int = 1,
    rows_per_read: int = ROWS_PER_READ,
) -> ray.data.Dataset:
    """A preprocessed dataset of one rank's sample ids, in plan order, read from the shards where they live.

    Each train worker builds its own from the plan at the step it starts from, so the same code
    serves a fresh run, a restart after a failure and a restart at another world size.
    """
    source = PlannedRows(table, ids, rows_per_read)
    # One block per read task: Ray Data would otherwise split small reads into `parallelism` pieces.
    dataset = ray.data.read_datasource(source, num_cpus=0.25, override_num_blocks=source.read_tasks).map_batches(
        Preprocessor,
        fn_constructor_kwargs={"config": config},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=0.5,
    )
    # The stream order is the sample plan: exact resume and the sample ledger depend on it.
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = False  # the train loop shows one bar for the whole job
    pace_scheduling_loop(dataset.context)  # a backpressured executor must not spin against the training thread
    return dataset
