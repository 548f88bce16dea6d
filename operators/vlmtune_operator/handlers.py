"""kopf wiring: create, resume and update all run one idempotent reconcile per kind; a timer keeps status true.

Handlers read, build, apply and patch status; every decision lives in the pure modules. Retries are carried
by the exception type: `kopf.TemporaryError` (upstream not done yet) retries later, `kopf.PermanentError`
(invalid job, failed upstream, vanished RayJob) stops with the reason in status. The job handlers are in
`job_handlers`, the Experiment's in `experiment_handlers`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import kopf

from vlmtune.spec import API_GROUP, KINDS, VERSION, plural_of
from vlmtune_operator.experiment_handlers import reconcile_experiment
from vlmtune_operator.job_handlers import reconcile, refresh_status
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.stores import Stores

__all__ = ["configure", "reconcile", "reconcile_experiment", "refresh_status", "register"]


def configure(settings: kopf.OperatorSettings, **_) -> None:
    """Keep kopf's bookkeeping in annotations: our status schema is structural and would prune `status.kopf`."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
    settings.posting.level = logging.WARNING  # Kubernetes events for problems only, not every handler run


def register(
    registry: kopf.OperatorRegistry, client_factory, runtime: RuntimeConfig, kinds: Mapping[str, type] = KINDS
) -> None:
    """Attach the handlers for every job kind to `registry`; `client_factory()` gives the API facade."""
    made: list = []

    def client():
        if not made:  # built lazily: in-cluster credentials exist only once the operator runs
            made.append(client_factory())
            made.append(Stores(made[0], runtime))
        return made[0]

    def on_change(body, patch, **_):
        if body.get("kind") == "Experiment":
            reconcile_experiment(body, patch, client(), runtime)
        else:
            reconcile(body, patch, client(), runtime)

    def on_timer(body, patch, **_):
        if body.get("kind") == "Experiment":
            # kopf runs timers beside change handlers: until the creating reconcile has recorded the children,
            # a timer run would race it to create them.
            if (body.get("status") or {}).get("children"):
                reconcile_experiment(body, patch, client(), runtime)
        else:
            refresh_status(body, patch, client(), runtime, stores=made[1])

    for kind in kinds:
        plural = plural_of(kind)
        for cause, event in (("create", kopf.on.create), ("resume", kopf.on.resume), ("update", kopf.on.update)):
            event(API_GROUP, VERSION, plural, registry=registry, id=f"reconcile-{cause}")(on_change)
        kopf.timer(
            API_GROUP, VERSION, plural, registry=registry, id="status", interval=runtime.status_interval_seconds
        )(on_timer)
