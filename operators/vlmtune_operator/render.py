"""What the operator would create for a set of jobs, without a cluster: `vlmtune render` prints this."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import yaml

from vlmtune.spec import Job

from vlmtune_operator.chaining import expected_models
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.runtime import RuntimeConfig


def render_jobs(jobs: Sequence[Job], runtime: RuntimeConfig, artifacts: Mapping[str, str] | None = None) -> list[dict]:
    """One RayJob per job that runs on Ray, as the operator builds it (minus owner references, which need
    the live object's uid).

    Upstream models are the ones the operator would find recorded on success, `<upstream output.uri>/model`,
    unless `artifacts` names another URI for that upstream job.
    """
    models = expected_models(jobs) | dict(artifacts or {})
    return [build_rayjob(job, runtime, {name: models[name] for name in job.upstream_jobs() if name in models})
            for job in jobs if runs_on_ray(job)]


def runs_on_ray(job: Job) -> bool:
    """Kinds with resources and an output become a RayJob; composite kinds only fan out children."""
    return hasattr(job.spec, "resources") and hasattr(job.spec, "output")


def parse_artifacts(pairs: Iterable[str]) -> dict[str, str]:
    """`JOB=URI` pairs from the command line.

    Raises:
        ValueError: for a pair without `=` or with an empty side.
    """
    result = {}
    for pair in pairs:
        name, sep, uri = pair.partition("=")
        if not sep or not name or not uri:
            raise ValueError(f"--artifact {pair!r}: write it as JOB=URI, e.g. stage1=s3://runs/stage1/model")
        result[name] = uri
    return result


def to_yaml(objects: Iterable[Mapping]) -> str:
    """Multi-document YAML, one object per document, keys in build order."""
    return "".join("---\n" + yaml.safe_dump(dict(obj), sort_keys=False, width=1_000_000) for obj in objects)
