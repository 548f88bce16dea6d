"""Resolve `spec.data.sources` into prepared task-shard datasets: one reading path for every kind of source.

Prepared shards are used where they are. Raw annotation files and the demo suite (generated where the
job runs) are prepared once into a cache keyed by what they are (`vlmtune data prepare`'s own
fingerprint then decides whether the content changed): `$VLMTUNE_DATA_CACHE` when set (any URI), else
the node cache for jobs with a local output, else `<output>/data/` so that workers on other nodes can
read them. Every dataset's files are checked against its manifest (existence and size, one listing)
before anything starts, so a missing or truncated shard is one line, not a failure hours in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from vlmtune import storage
from vlmtune.data.catalog import Selection
from vlmtune.data.demo import DemoSuite, ensure_demo_suite
from vlmtune.data.errors import DataError
from vlmtune.data.prepare import PrepareConfig, prepare
from vlmtune.data.shards import FORMAT_VERSION, check_files, read_manifest
from vlmtune.node_cache import cache_root
from vlmtune.spec import DataSource, DemoSource, RunLayout, SourceFormat

DATA_CACHE_ENV = "VLMTUNE_DATA_CACHE"


def demo_cache_dir(demo: DemoSource) -> Path:
    """Where this demo configuration is generated: keyed by its parameters, shared by jobs."""
    return cache_root() / "demo" / _digest(demo.model_copy(update={"tasks": None}).to_doc())


def demo_suite_for(demo: DemoSource) -> DemoSuite:
    return ensure_demo_suite(
        demo_cache_dir(demo),
        per_task=demo.per_task,
        heldout_per_task=demo.heldout_per_task,
        seed=demo.seed,
        image_size=demo.image_size,
    )


def resolve_sources(
    sources: list[DataSource], output_uri: str, log: Callable[[str], None] | None = None
) -> list[Selection]:
    """The prepared dataset behind each source, preparing raw and demo sources first, files checked.

    Raises:
        ShardFormatError: a `format: shards` source is not a prepared dataset.
        ShardIntegrityError: a dataset's shards or index are missing or have other sizes than its manifest says.
        AnnotationError: a raw annotation file cannot be read.
        DataError: a demo source names tasks the suite does not have (the errors above are DataErrors too).
    """
    selections = []
    for source in sources:
        if source.demo is not None:
            uri, tasks = _prepared_demo(source.demo, output_uri, log), source.demo.tasks
        elif source.format is SourceFormat.shards:
            uri, tasks = storage.absolute(source.uri), None
        else:
            uri, tasks = _prepared_raw(source, output_uri, log), None
        check_files(uri, read_manifest(uri))
        selections.append(Selection(uri, source.max_per_task, tuple(tasks) if tasks else None))
    return selections


def _prepared_demo(demo: DemoSource, output_uri: str, log) -> str:
    suite = demo_suite_for(demo)
    unknown = sorted(set(demo.tasks or ()) - set(suite.tasks))
    if unknown:
        raise DataError(f"spec.data.sources[].demo.tasks: {unknown} do not exist; choose from {list(suite.tasks)}")
    config = PrepareConfig(fmt="vision-flan", annotations=str(suite.train_annotations), out="", io_threads=4)
    return _prepared(config, {"demo": demo.model_copy(update={"tasks": None}).to_doc()}, output_uri, log)


def _prepared_raw(source: DataSource, output_uri: str, log) -> str:
    config = PrepareConfig(
        fmt=source.format.value,
        annotations=storage.absolute(source.uri),
        images=storage.absolute(source.images) if source.images else None,
        out="",
    )
    return _prepared(
        config, {"annotations": config.annotations, "images": config.images, "fmt": config.fmt}, output_uri, log
    )


def _prepared(config: PrepareConfig, identity: dict, output_uri: str, log) -> str:
    """Prepare `config`'s input into its cache folder unless the folder already holds exactly that input."""
    out = storage.join(_cache_root(output_uri), _digest({**identity, "format_version": FORMAT_VERSION}))
    with _lock(out):
        result = prepare(dataclasses.replace(config, out=out))
    if log and not result.up_to_date:
        log(f"prepared {config.annotations} into {out} ({result.manifest['instances']} instances)")
    return out


def _cache_root(output_uri: str) -> str:
    if os.environ.get(DATA_CACHE_ENV):
        return os.environ[DATA_CACHE_ENV]
    if storage.is_remote(output_uri):
        return RunLayout(output_uri).prepared_data  # where the job's workers can read it
    return str(cache_root() / "shards")


@contextlib.contextmanager
def _lock(out: str) -> Iterator[None]:
    """Two runs preparing the same local cache folder take turns; the second finds it up to date."""
    local = storage.local_path(out)
    if local is None:
        yield  # object stores have no locks; prepare writes the manifest last, so readers never see a partial set
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{local}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        yield


def _digest(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
