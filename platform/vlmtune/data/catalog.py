"""The catalog: what planning knows about every sample, as small arrays indexed by sample id.

Sample ids number the rows of a job's prepared datasets, one after another in source order and,
inside a dataset, in the order of its index (its manifest's shards and their rows). Per id the
catalog keeps the task (as a code), the estimated text tokens and whether there is an image: nine
bytes a sample, read from each dataset's `index.parquet`. Image bytes and conversations stay in the
shards; the rank that trains a sample reads them (`data.reader`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vlmtune import storage
from vlmtune.data.shards import read_index, read_manifest, skipped_examples, skipped_reasons


@dataclass(frozen=True)
class Shard:
    """One shard as readers need it: where it is and what the manifest promised about it."""

    dataset: str  # the prepared dataset's URI (absolute)
    path: str  # relative to `dataset`
    rows: int
    bytes: int
    footer_sha256: str

    @property
    def uri(self) -> str:
        return storage.join(self.dataset, self.path)

    def entry(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "footer_sha256": self.footer_sha256}


@dataclass(frozen=True)
class ShardTable:
    """Every shard of a job's data with the first sample id of each: maps ids to (shard, row). Small and picklable."""

    shards: tuple[Shard, ...]
    starts: np.ndarray  # int64, len(shards) + 1: first id of each shard, then the total

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard number, row within the shard) of each id."""
        shard = np.searchsorted(self.starts, ids, side="right") - 1
        return shard, ids - self.starts[shard]


@dataclass(frozen=True)
class Selection:
    """Which samples of a prepared dataset a source takes: all, or the first `max_per_task` of each task."""

    uri: str
    max_per_task: int | None = None
    tasks: tuple[str, ...] | None = None  # only these tasks (the demo source's `tasks`)


@dataclass(frozen=True)
class Catalog:
    """Per-sample arrays over the union of a job's datasets, plus the shard table and what prepare skipped."""

    task_names: tuple[str, ...]  # sorted; `task_codes` index into it
    task_codes: np.ndarray  # int32 per sample id
    text_tokens: np.ndarray  # int32 per sample id: estimated tokens without the image's
    has_image: np.ndarray  # bool per sample id
    eligible: np.ndarray  # bool per sample id: selected by its source (max-per-task, task filter)
    table: ShardTable
    datasets: tuple[str, ...]  # each source's dataset URI, in id order (one may appear twice)
    skipped: dict[str, int]  # prepare's skip counts by reason, over all datasets
    skip_examples: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.task_codes)

    def kept(self) -> int:
        return int(self.eligible.sum())

    def lengths(self, image_tokens: int) -> np.ndarray:
        """Estimated training length of every sample for a model whose image costs `image_tokens`."""
        return self.text_tokens + self.has_image.astype(np.int32) * np.int32(image_tokens)

    def ids_by_task(self, tasks: set[str] | None = None) -> dict[str, np.ndarray]:
        """Eligible ids of each task (in id order), for the tasks named (all when None)."""
        ids = np.flatnonzero(self.eligible)
        codes = self.task_codes[ids]
        order = np.argsort(codes, kind="stable")
        ids, codes = ids[order], codes[order]
        bounds = np.searchsorted(codes, np.arange(len(self.task_names) + 1))
        return {
            name: ids[bounds[code] : bounds[code + 1]]
            for code, name in enumerate(self.task_names)
            if bounds[code + 1] > bounds[code] and (tasks is None or name in tasks)
        }

    def keys(self, ids: np.ndarray) -> list[str]:
        """The sample keys of `ids` (reads the key column of the indexes: for tools and tests, not training)."""
        keys = pa.concat_arrays(
            [
                read_index(dataset, read_manifest(dataset), ["key"]).column("key").combine_chunks()
                for dataset in self.datasets
            ]
        )
        return keys.take(pa.array(np.asarray(ids, dtype=np.int64))).to_pylist()


def build_catalog(selections: list[Selection]) -> Catalog:
    """Read the indexes (small columns only) of the datasets `selections` name.

    Raises:
        ShardFormatError / ShardIntegrityError: a dataset is not prepared, or its index is damaged.
    """
    parts, shards, skipped, examples = [], [], {}, []
    for selection in selections:
        uri = storage.absolute(selection.uri)
        manifest = read_manifest(uri)
        index = read_index(uri, manifest, ["task", "text_tokens", "image"])
        parts.append((selection, index))
        shards.extend(Shard(uri, s["path"], s["rows"], s["bytes"], s["footer_sha256"]) for s in manifest["shards"])
        for reason, count in skipped_reasons(manifest).items():
            skipped[reason] = skipped.get(reason, 0) + count
        examples.extend(skipped_examples(manifest))
    names = tuple(sorted({name for _, index in parts for name in _task_dictionary(index)}))
    codes, tokens, images, eligible = [], [], [], []
    for selection, index in parts:
        task = index.column("task").combine_chunks()
        remap = np.asarray([names.index(name) for name in task.dictionary.to_pylist()], dtype=np.int32)
        local = remap[task.indices.to_numpy(zero_copy_only=False)] if len(task) else np.zeros(0, np.int32)
        codes.append(local)
        tokens.append(index.column("text_tokens").to_numpy().astype(np.int32))
        images.append(index.column("image").to_numpy(zero_copy_only=False).astype(bool))
        eligible.append(_selected(local, names, selection))
    starts = np.concatenate([[0], np.cumsum([shard.rows for shard in shards])]).astype(np.int64)
    return Catalog(
        names,
        _concat(codes, np.int32),
        _concat(tokens, np.int32),
        _concat(images, bool),
        _concat(eligible, bool),
        ShardTable(tuple(shards), starts),
        tuple(storage.absolute(selection.uri) for selection, _ in parts),
        skipped,
        tuple(examples[:20]),
    )


def _task_dictionary(index: pa.Table) -> list[str]:
    return index.column("task").combine_chunks().dictionary.to_pylist()


def _selected(codes: np.ndarray, names: tuple[str, ...], selection: Selection) -> np.ndarray:
    """The source's filter: its tasks, and the first `max_per_task` of each task in id (file) order."""
    keep = np.ones(len(codes), bool)
    if selection.tasks is not None:
        keep &= np.isin(codes, [names.index(task) for task in selection.tasks if task in names])
    if selection.max_per_task is not None:
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        first = np.searchsorted(sorted_codes, sorted_codes, side="left")  # position of each task's first id
        rank = np.empty(len(codes), np.int64)
        rank[order] = np.arange(len(codes)) - first
        keep &= rank < selection.max_per_task
    return keep


def _concat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)
