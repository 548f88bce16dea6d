"""`vlmtune data inspect`: what a prepared task-shard dataset holds, from its manifest and lengths, and which
shards are damaged.

Only the manifest, a listing and the `est_tokens` column are read (Parquet column projection), so
inspecting a dataset of hundreds of GB of images reads a few MB; a shard that is missing, has another
size than the manifest says, or cannot be read is reported, not fatal. `verify` also checksums every
shard against the manifest (reading it all), which finds what reading one column cannot: a flipped bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlmtune import storage
from vlmtune.data.shards import CAPPED, read_manifest

PERCENTILES = (50, 90, 99)


def length_stats(lengths: Sequence[int]) -> dict:
    """min / p50 / p90 / p99 / max / mean of token lengths (nearest-rank percentiles; zeros when empty)."""
    if len(lengths) == 0:
        return {"min": 0, **{f"p{p}": 0 for p in PERCENTILES}, "max": 0, "mean": 0.0}
    values = np.asarray(lengths)
    return {
        "min": int(values.min()),
        **{f"p{p}": int(np.percentile(values, p, method="inverted_cdf")) for p in PERCENTILES},
        "max": int(values.max()),
        "mean": round(float(values.mean()), 1),
    }


def inspect_dataset(uri: str, verify: bool = False) -> dict:
    """Tasks with counts and token-length stats, overall token lengths, shards, damaged shards and skips.

    Args:
        verify: also check every shard's sha256 against the manifest.

    Raises:
        ShardFormatError: no manifest, or not one this version reads.
    """
    manifest = read_manifest(uri)
    lengths: dict[str, list[int]] = {task: [] for task in manifest["tasks"]}
    damaged = []
    for shard in manifest["shards"]:
        problem = shard_problem(uri, shard, verify)
        if problem is None:
            problem = _read_lengths(uri, shard, lengths)
        if problem is not None:
            damaged.append({"path": shard["path"], "task": shard["task"], "problem": problem})
    index_problem = shard_problem(uri, manifest["index"], verify)  # planning reads it: as vital as a shard
    if index_problem is not None:
        damaged.append({"path": manifest["index"]["path"], "task": None, "problem": index_problem})
    every = [value for values in lengths.values() for value in values]
    return {
        "uri": storage.absolute(uri),
        "instances": manifest["instances"],
        "tasks": {
            task: {"instances": info["instances"], "shards": info["shards"], "est_tokens": length_stats(lengths[task])}
            for task, info in manifest["tasks"].items()
        },
        "est_tokens": length_stats(every),
        "shards": {
            "count": len(manifest["shards"]),
            "bytes": sum(s["bytes"] for s in manifest["shards"]),
            "verified": verify,
        },
        "damaged": damaged,
        "skipped": manifest["skipped"],
        "source": manifest["source"],
    }


def shard_problem(uri: str, shard: dict, verify: bool) -> str | None:
    """Why a shard does not match its manifest entry (missing, another size, with `verify` another sha256),
    or None."""
    shard_uri = storage.join(uri, shard["path"])
    fs, path = storage.resolve(shard_uri)
    info = storage.with_retry(shard_uri, lambda: fs.get_file_info(path))
    if info.type != pafs.FileType.File:
        return "missing"
    if info.size != shard["bytes"]:
        return f"{info.size} bytes, the manifest says {shard['bytes']}"
    if verify and storage.sha256_file(shard_uri) != shard["sha256"]:
        return "sha256 does not match the manifest (the bytes changed after prepare wrote them)"
    return None


def _read_lengths(uri: str, shard: dict, lengths: dict[str, list[int]]) -> str | None:
    fs, path = storage.resolve(storage.join(uri, shard["path"]))
    try:
        column = storage.with_retry(uri, lambda: pq.read_table(path, columns=["est_tokens"], filesystem=fs))
    except (OSError, pa.ArrowException) as err:
        return f"unreadable Parquet: {str(err).splitlines()[0][:200]}"
    lengths.setdefault(shard["task"], []).extend(column.column("est_tokens").to_pylist())
    return None


def prepare_problem(manifest: dict, max_skipped_fraction: float) -> str | None:
    """Why a prepared dataset should not be used as it is (nothing kept, or too many records skipped), or None.
    Records cut by --max-per-task are a choice, not a problem."""
    skipped = {reason: count for reason, count in manifest["skipped"]["reasons"].items() if reason != CAPPED}
    kept, lost = manifest["instances"], sum(skipped.values())
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items(), key=lambda r: -r[1])[:3])
    if kept == 0:
        return f"kept no instance ({lost} records skipped{'; ' + reasons if reasons else ''})"
    if lost / (kept + lost) > max_skipped_fraction:
        return (
            f"skipped {lost} of {kept + lost} records ({lost / (kept + lost):.1%}), more than "
            f"--max-skipped-fraction {max_skipped_fraction:.1%} ({reasons})"
        )
    return None


def render(report: dict) -> str:
    """The inspection as a plain-text table."""
    tokens = report["est_tokens"]
    lines = [
        f"{report['uri']}: {report['instances']} instances in {len(report['tasks'])} tasks, "
        f"{report['shards']['count']} shards, {report['shards']['bytes'] / 2**20:.1f} MiB",
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
    checked = "verified (sha256)" if report["shards"].get("verified") else "checked (sizes; --verify checksums)"
    lines += ["", f"damaged shards: {len(report['damaged'])} of {report['shards']['count']} {checked}"]
    lines += [f"  {entry['path']}: {entry['problem']}" for entry in report["damaged"]]
    return "\n".join(lines)
