"""`vlmtune data inspect`: what a prepared task-shard dataset holds, from its manifest and lengths.

Only the manifest and the `est_tokens` column are read (Parquet column projection), so
inspecting a dataset of hundreds of GB of images reads a few MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow.parquet as pq

from vlmtune import storage
from vlmtune.data.shards import read_manifest

PERCENTILES = (50, 90, 99)


def length_stats(lengths: Sequence[int]) -> dict:
    """min / p50 / p90 / p99 / max / mean of token lengths (nearest-rank percentiles; zeros when empty)."""
    if len(lengths) == 0:
        return {"min": 0, **{f"p{p}": 0 for p in PERCENTILES}, "max": 0, "mean": 0.0}
    values = np.asarray(lengths)
    return {"min": int(values.min()),
            **{f"p{p}": int(np.percentile(values, p, method="inverted_cdf")) for p in PERCENTILES},
            "max": int(values.max()), "mean": round(float(values.mean()), 1)}


def inspect_dataset(uri: str) -> dict:
    """Tasks with counts and token-length stats, overall token lengths, shards and skips."""
    manifest = read_manifest(uri)
    lengths: dict[str, list[int]] = {task: [] for task in manifest["tasks"]}
    for shard in manifest["shards"]:
        fs, path = storage.resolve(storage.join(uri, shard["path"]))
        column = storage.with_retry(uri, lambda: pq.read_table(path, columns=["est_tokens"], filesystem=fs))
        lengths[shard["task"]].extend(column.column("est_tokens").to_pylist())
    every = [value for values in lengths.values() for value in values]
    return {
        "uri": storage.absolute(uri),
        "instances": manifest["instances"],
        "tasks": {task: {"instances": info["instances"], "shards": info["shards"],
                         "est_tokens": length_stats(lengths[task])}
                  for task, info in manifest["tasks"].items()},
        "est_tokens": length_stats(every),
        "shards": {"count": len(manifest["shards"]), "bytes": sum(s["bytes"] for s in manifest["shards"])},
        "skipped": manifest["skipped"],
        "source": manifest["source"],
    }


def render(report: dict) -> str:
    """The inspection as a plain-text table."""
    tokens = report["est_tokens"]
    lines = [
        f"{report['uri']}: {report['instances']} instances in {len(report['tasks'])} tasks, "
        f"{report['shards']['count']} shards, {report['shards']['bytes'] / 2 ** 20:.1f} MiB",
        "estimated tokens: " + "  ".join(f"{name} {tokens[name]}" for name in ("min", "p50", "p90", "p99", "max")),
        "",
        f"{'task':<32} {'instances':>9} {'p50 tok':>8} {'max tok':>8}",
    ]
    for task, info in report["tasks"].items():
        lines.append(f"{task:<32} {info['instances']:>9} {info['est_tokens']['p50']:>8} {info['est_tokens']['max']:>8}")
    skipped = report["skipped"]
    lines += ["", f"skipped: {skipped['total']}"]
    lines += [f"  {reason:<40} {count}" for reason, count in skipped["reasons"].items()]
    lines += [f"  e.g. {example}" for example in skipped["examples"][:10]]
    return "\n".join(lines)
