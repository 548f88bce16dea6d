"""What the operator would create for a set of jobs, without a cluster: `vlmtune render` prints this."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import yaml

from vlmtune.spec import KINDS, Experiment, Job, expand
from vlmtune_operator.chaining import expected_models
from vlmtune_operator.experiment import child_documents, is_root
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.runtime import RuntimeConfig


def render_jobs(jobs: Sequence[Job], runtime: RuntimeConfig, artifacts: Mapping[str, str] | None = None) -> list[dict]:
    """What the operator creates for `jobs` (minus owner references, which need the live object's uid).

    A TuningJob or EvalJob becomes one RayJob. Upstream models are the ones the operator would find recorded
    on success, `<upstream output.uri>/model`, unless `artifacts` names another URI for that upstream job.
    An Experiment becomes its child jobs, followed by the RayJobs of the children that start at once (those
    not `from` another child); the others are created as their upstream children succeed, and the report
    RayJob once all did.
    """
    models = expected_models(jobs) | dict(artifacts or {})
    objects = []
    for job in jobs:
        if isinstance(job, Experiment):
            objects += render_experiment(job, runtime)
        else:
            objects.append(
                build_rayjob(job, runtime, {name: models[name] for name in job.upstream_jobs() if name in models})
            )
    return objects


def render_experiment(experiment: Experiment, runtime: RuntimeConfig) -> list[dict]:
    """The experiment's child jobs, then the RayJobs of its root children."""
    children = child_documents(expand(experiment), experiment.metadata.namespace)
    # Built from the child documents, as the operator builds them from the live children.
    roots = [KINDS[child["kind"]].model_validate(child) for child in children if is_root(child)]
    return children + [build_rayjob(job, runtime) for job in roots]


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
