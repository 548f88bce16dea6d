"""The sample ledger: which micro-batches each rank trained at each step (`training.recordSamples`).

Rows are written in one chunk per rank and checkpoint, named by the checkpoint's step. A run that
starts again from a checkpoint first drops the chunks after it (whatever world size wrote them),
then writes the steps it trains again: the union of chunks is what the final model was trained on.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pyarrow.fs as pafs

from vlmtune import storage
from vlmtune.spec.layout import RunLayout

_CHUNK = re.compile(r"rank(\d+)-step(\d+)\.jsonl$")


class SampleLedger:
    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self.rows: list[dict] = []

    def add(self, step: int, micro_batches: list[list[str]]) -> None:
        self.rows.append({"step": step, "rank": self.rank, "worldSize": self.world_size, "microBatches": micro_batches})

    def flush(self, output_uri: str, step: int) -> None:
        if not self.rows:
            return
        data = "".join(json.dumps(row) + "\n" for row in self.rows).encode()
        storage.write_bytes(storage.join(RunLayout(output_uri).samples, f"rank{self.rank}-step{step:06d}.jsonl"), data)
        self.rows = []


def forget_after(output_uri: str, step: int) -> None:
    """Delete chunks of steps after `step` (a restart trains them again, maybe with other ranks)."""
    fs, root = storage.resolve(RunLayout(output_uri).samples)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return
    for info in fs.get_file_info(pafs.FileSelector(root)):
        match = _CHUNK.search(info.base_name)
        if match and int(match.group(2)) > step:
            fs.delete_file(info.path)


def read_rows(output_uri: str) -> list[dict]:
    fs, root = storage.resolve(RunLayout(output_uri).samples)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    rows = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(root)), key=lambda i: i.path):
        with fs.open_input_file(info.path) as handle:
            rows.extend(json.loads(line) for line in handle.read().decode().splitlines())
    return rows


def read_steps(output_uri: str) -> dict[int, list[list[str]]]:
    """step -> the step's micro-batches (sample keys) in plan order, put back together from the ranks.

    Rank r of W trained micro-batches r, r+W, ... of a step. Raises when a step was recorded twice,
    by ranks of different world sizes, or with a rank missing.
    """
    by_step: dict[int, dict[int, dict]] = defaultdict(dict)
    for row in rows_checked(read_rows(output_uri)):
        by_step[row["step"]][row["rank"]] = row
    steps = {}
    for step, ranks in sorted(by_step.items()):
        world = {row["worldSize"] for row in ranks.values()}
        if len(world) != 1 or sorted(ranks) != list(range(world.pop())):
            raise ValueError(f"step {step}: ledger rows from ranks {sorted(ranks)} do not make one world")
        merged: list[list[str]] = []
        for index in range(max(len(row["microBatches"]) for row in ranks.values())):
            merged.extend(
                row["microBatches"][index] for _, row in sorted(ranks.items()) if index < len(row["microBatches"])
            )
        steps[step] = merged
    return steps


def rows_checked(rows: list[dict]) -> list[dict]:
    seen = set()
    for row in rows:
        if (row["step"], row["rank"]) in seen:
            raise ValueError(f"step {row['step']} rank {row['rank']} is in the ledger twice")
        seen.add((row["step"], row["rank"]))
    return rows
