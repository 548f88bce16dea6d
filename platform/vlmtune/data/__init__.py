"""The data plane: raw annotations -> task shards (`prepare`), shards -> catalog -> sample plan (the driver, ids
only), a rank's ids -> a Ray Data stream read from the shards (the workers).

    prepare(PrepareConfig(...))                     raw Vision-Flan / LLaVA / Hugging Face datasets -> task shards
    resolve_sources(spec.data.sources, output_uri)  every source as a prepared dataset, files checked
    build_catalog(selections)                       per-sample task, tokens, image flag (small arrays)
    job_plan(spec, catalog, image_tokens)           the SamplePlan: int64 ids per step and micro-batch
    build_rank_dataset(table, ids, processor)       one rank's Ray Data stream, in plan order

Names load on first use, so importing `vlmtune.data` pulls in neither Ray nor PIL.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AnnotationError": "annotations",
    "Catalog": "catalog",
    "DataError": "errors",
    "PrepareConfig": "prepare",
    "PrepareResult": "prepare",
    "ProcessorConfig": "preprocess",
    "Preprocessor": "preprocess",
    "SamplePlan": "mixture",
    "Selection": "catalog",
    "ShardFormatError": "shards",
    "ShardIntegrityError": "shards",
    "ShardTable": "catalog",
    "build_catalog": "catalog",
    "build_rank_dataset": "pipeline",
    "demo_suite_for": "sources",
    "find_data_error": "errors",
    "job_plan": "mixture",
    "plan_samples": "mixture",
    "prepare": "prepare",
    "rank_slice": "mixture",
    "resolve_sources": "sources",
    "write_demo_suite": "demo",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlmtune.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vlmtune.data.{_EXPORTS[name]}"), name)
