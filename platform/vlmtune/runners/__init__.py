"""Running job files: `run_pipeline` (every job of a file in dependency order, skipping finished ones, on embedded
Ray or the cluster RAY_ADDRESS names) and `submit` (a remote Ray cluster through the Ray Jobs API).

    from vlmtune.runners import run_pipeline
    run_pipeline(load_jobs(["jobs/quickstart.yaml"]))
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PipelineResult": "pipeline",
    "execution_order": "pipeline",
    "expand_jobs": "pipeline",
    "job_steps": "pipeline",
    "resolve_data": "pipeline",
    "run_pipeline": "pipeline",
    "ray_session": "local",
    "logical_cpus": "local",
    "submit": "remote",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlmtune.runners' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vlmtune.runners.{_EXPORTS[name]}"), name)
