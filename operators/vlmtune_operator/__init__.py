"""The vlmtune Kubernetes operator: job custom resources -> KubeRay RayJobs queued by Kueue.

Only the pure builders are exported here, so `vlmtune render` can use them without kopf or a cluster;
the kopf handlers live in `vlmtune_operator.handlers` and run through `python -m vlmtune_operator`.
"""

from vlmtune_operator.chaining import Resolution, artifact_uris, resolve_document, resolve_upstreams
from vlmtune_operator.rayjob import BuildError, build_rayjob, rayjob_name
from vlmtune_operator.render import parse_artifacts, render_jobs, to_yaml
from vlmtune_operator.runtime import NodePool, RuntimeConfig, load_runtime, parse_runtime

__all__ = [
    "BuildError",
    "NodePool",
    "Resolution",
    "RuntimeConfig",
    "artifact_uris",
    "build_rayjob",
    "load_runtime",
    "parse_artifacts",
    "parse_runtime",
    "rayjob_name",
    "render_jobs",
    "resolve_document",
    "resolve_upstreams",
    "to_yaml",
]
