"""The Ray Data side of training: per-rank sample streams -> preprocessed datasets."""

from __future__ import annotations

import ray

from vlmtune.data.preprocess import Preprocessor, ProcessorConfig

RECORD_FIELDS = ("key", "task", "image", "image_bytes", "conversations")


def rank_dataset_name(rank: int) -> str:
    return f"train-{rank}"


def build_rank_dataset(records: list[dict], config: ProcessorConfig, *, batch_size: int = 16,
                       concurrency: int = 1) -> ray.data.Dataset:
    """A preprocessed, order-preserving dataset of one rank's sample stream."""
    rows = [{name: record.get(name, b"" if name == "image_bytes" else "") for name in RECORD_FIELDS}
            for record in records]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch_size, 64)))
    return dataset.map_batches(
        Preprocessor, fn_constructor_kwargs={"config": config}, batch_size=batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=0.5,
    )


def build_train_datasets(per_rank: list[list[dict]], config: ProcessorConfig, **kwargs) -> dict[str, ray.data.Dataset]:
    """One dataset per rank: a rank's stream is fixed by the sample plan, so resume is exact."""
    return {rank_dataset_name(rank): build_rank_dataset(records, config, **kwargs)
            for rank, records in enumerate(per_rank)}
