"""Write (or check) a chart's Chart.lock without the network, as `helm dependency update` would write it.

Every dependency must name one exact version (the umbrella chart pins the versions the tests validate against), so
nothing needs resolving: the lock holds each dependency's name, repository and version, and a digest computed as
Helm's `resolver.HashReq` does (sha256 of the JSON of [Chart.yaml's dependencies, the locked ones]). The real helm
binary checks the digest in tests/unit/chart/test_chart_helm_binary.py.

    python tests/tools/chart_lock.py charts/vlmtune-stack          # write charts/vlmtune-stack/Chart.lock
    python tests/tools/chart_lock.py --check charts/vlmtune-stack  # exit 1 when the lock is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

DEPENDENCY_FIELDS = (
    ("name", False),
    ("version", True),
    ("repository", False),
    ("condition", True),
    ("tags", True),
    ("enabled", True),
    ("import-values", True),
    ("alias", True),
    ("depends-on", True),
)
"""helm's chart.Dependency JSON fields in struct order, and whether each is `omitempty`."""
EXACT = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def go_json(dependency: dict) -> dict:
    """A dependency as Go's json.Marshal writes a chart.Dependency: struct order, empty omitempty fields left out."""
    return {key: dependency.get(key, "") for key, omit in DEPENDENCY_FIELDS if not (omit and not dependency.get(key))}


def locked(dependency: dict, chart_dir: Path) -> dict:
    """What the resolver locks: the exact version (a file:// chart's own version)."""
    version = dependency["version"]
    if dependency["repository"].startswith("file://"):
        local = chart_dir / dependency["repository"].removeprefix("file://")
        version = yaml.safe_load((local / "Chart.yaml").read_text(encoding="utf-8"))["version"]
    if not EXACT.match(version):
        raise ValueError(
            f"{chart_dir}/Chart.yaml: dependencies[{dependency['name']}].version {version!r} is a range; "
            "pin one version (resolving a range needs the network)"
        )
    return {"name": dependency["name"], "version": version, "repository": dependency["repository"]}


def lock_for(chart_dir: Path, generated: str | None = None) -> dict:
    """The Chart.lock document of `chart_dir`."""
    requested = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))["dependencies"]
    pinned = [locked(dependency, chart_dir) for dependency in requested]
    data = json.dumps(
        [[go_json(d) for d in requested], [go_json(d) for d in pinned]], separators=(",", ":"), ensure_ascii=False
    )
    digest = "sha256:" + hashlib.sha256(data.encode()).hexdigest()
    entries = [{"name": d["name"], "repository": d["repository"], "version": d["version"]} for d in pinned]
    when = generated or datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"dependencies": entries, "digest": digest, "generated": when}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("--check", action="store_true", help="compare with the committed Chart.lock")
    args = parser.parse_args(argv)
    path = args.chart / "Chart.lock"
    if args.check:
        committed = yaml.safe_load(path.read_text(encoding="utf-8"))
        fresh = lock_for(args.chart, committed["generated"])
        if fresh != committed:
            print(f"{path} is stale: run python tests/tools/chart_lock.py {args.chart}", file=sys.stderr)
            return 1
        return 0
    path.write_text(yaml.safe_dump(lock_for(args.chart), sort_keys=False), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
