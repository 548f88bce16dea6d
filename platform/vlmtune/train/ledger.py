"""The sample ledger: which sample keys each rank trained at each step (`training.recordSamples`).

Keys are written in one chunk per rank and checkpoint, named by the checkpoint's step, so a run that
resumes from a checkpoint rewrites exactly the chunks it trains again: the union of chunks is what
the final model was trained on.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.fs as pafs

from vlmtune import storage

FOLDER = "samples"


class SampleLedger:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, step: int, keys: list[str]) -> None:
        self.rows.append({"step": step, "keys": keys})

    def flush(self, output_uri: str, rank: int, step: int) -> None:
        if not self.rows:
            return
        data = "".join(json.dumps(row) + "\n" for row in self.rows).encode()
        storage.write_bytes(storage.join(output_uri, FOLDER, f"rank{rank}-step{step:06d}.jsonl"), data)
        self.rows = []


def read_ledger(output_uri: str) -> dict[int, dict[int, list[str]]]:
    """rank -> step -> keys trained at that step."""
    fs, root = storage.resolve(storage.join(output_uri, FOLDER))
    ledger: dict[int, dict[int, list[str]]] = defaultdict(dict)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return {}
    for info in sorted(fs.get_file_info(pafs.FileSelector(root)), key=lambda i: i.path):
        rank = int(info.base_name.split("-")[0].removeprefix("rank"))
        with fs.open_input_file(info.path) as handle:
            for line in handle.read().decode().splitlines():
                row = json.loads(line)
                ledger[rank][row["step"]] = row["keys"]
    return dict(ledger)
