"""Resolve `spec.data.sources` into sample records (the demo suite is generated where the job runs)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vlmtune.data import shards
from vlmtune.data.demo import ensure_demo_suite
from vlmtune.data.records import ReadReport, read_annotations, to_records
from vlmtune.spec import DataSource, DemoSource, SourceFormat


def demo_cache_dir(demo: DemoSource) -> Path:
    """Where this demo configuration is generated: keyed by its parameters, shared by jobs."""
    root = Path(os.environ.get("VLMTUNE_CACHE", Path.home() / ".cache" / "vlmtune"))
    digest = hashlib.sha256(json.dumps(demo.to_doc(), sort_keys=True).encode()).hexdigest()[:12]
    return root / "demo" / digest


def demo_suite_for(demo: DemoSource):
    return ensure_demo_suite(
        demo_cache_dir(demo), per_task=demo.per_task, heldout_per_task=demo.heldout_per_task,
        seed=demo.seed, image_size=demo.image_size,
    )


def read_source(source: DataSource, split: str = "train") -> tuple[list[dict], ReadReport]:
    """Records of one source, with max-per-task not yet applied (the mixture does that)."""
    if source.demo is None and source.format is SourceFormat.shards:
        # Shards carry their images inline and their checksums in the manifest (checked on read).
        return shards.read_shard_records(source.uri), shards.read_report(shards.read_manifest(source.uri))
    if source.demo is None:
        return read_annotations(source.uri, source.images, source.format.value)
    suite = demo_suite_for(source.demo)
    annotations = suite.train_annotations if split == "train" else suite.heldout_annotations
    raw = json.loads(Path(annotations).read_text(encoding="utf-8"))
    if source.demo.tasks:
        unknown = set(source.demo.tasks) - set(suite.tasks)
        if unknown:
            raise ValueError(f"demo tasks {sorted(unknown)} do not exist; choose from {list(suite.tasks)}")
        raw = [item for item in raw if item["task_name"] in source.demo.tasks]
    records, report = to_records(raw, str(suite.root), "vision-flan", source=str(annotations))
    # Inline the (small) demo images so workers on other nodes need no shared filesystem.
    for record in records:
        record["image_bytes"] = Path(record["image"]).read_bytes()
    return records, report


def read_sources(sources: list[DataSource], split: str = "train") -> tuple[list[dict], ReadReport]:
    records, report = [], ReadReport()
    for source in sources:
        found, found_report = read_source(source, split)
        cap = source.max_per_task
        records.extend(_cap_per_task(found, cap) if cap else found)
        report.merge(found_report)
    report.kept = len(records)
    return records, report


def _cap_per_task(records: list[dict], cap: int) -> list[dict]:
    counts: dict[str, int] = {}
    kept = []
    for record in records:
        counts[record["task"]] = counts.get(record["task"], 0) + 1
        if counts[record["task"]] <= cap:
            kept.append(record)
    return kept
