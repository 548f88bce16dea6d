"""The Ray Data side of training: one rank's slice of the sample plan -> a preprocessed, ordered dataset."""

from __future__ import annotations

import ray

from vlmtune.data.preprocess import Preprocessor, ProcessorConfig

RECORD_FIELDS = ("key", "task", "image", "image_bytes", "conversations")


def build_rank_dataset(records: list[dict], config: ProcessorConfig, *, batch_size: int = 16,
                       concurrency: int = 1) -> ray.data.Dataset:
    """A preprocessed dataset of one rank's sample stream, in stream order.

    Each train worker builds its own from the plan at the step it starts from, so the same code
    serves a fresh run, a restart after a failure and a restart at another world size.
    """
    rows = [{name: record.get(name, b"" if name == "image_bytes" else "") for name in RECORD_FIELDS}
            for record in records]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch_size, 64))).map_batches(
        Preprocessor, fn_constructor_kwargs={"config": config}, batch_size=batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=0.5,
    )
    # The stream order is the sample plan: exact resume and the sample ledger depend on it.
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = False  # the train loop shows one bar for the whole job
    return dataset
