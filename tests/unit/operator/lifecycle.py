"""A small cluster for the lifecycle harness: the operator's real handlers against KubeRay's and Kueue's state
machines, replayed step by step on a fake clock.

No API server, KubeRay or Kueue controller runs here. What runs instead is each controller's state machine, written
from its source at the tag the tests validate against (the upstream CRDs in ../shared/crds):

- KubeRay v1.7.0, `ray-operator/controllers/ray/rayjob_controller.go` (`Reconcile`): "" (New) -> Initializing
  (`initRayJobStatusIfNeed` sets startTime, even for a suspended RayJob) -> Running (cluster ready, submitter
  created) -> Complete / Failed; `updateStatusToSuspendingIfNeeded` (Initializing or Running with spec.suspend ->
  Suspending); Suspending -> Suspended and Retrying -> New once the cluster is deleted; Suspended -> New when
  unsuspended; `checkActiveDeadlineAndUpdateStatusIfNeeded` (from startTime, so it restarts at every Initializing);
  `checkBackoffLimitAndUpdateStatusIfNeeded` (Failed -> Retrying while retries remain); deletion removes the
  `ray.io/rayjob-finalizer` after StopJob.
- Kueue v0.19.2, `pkg/controller/jobframework/reconciler.go` (`ReconcileGenericJob`: a job without the queue-name
  label is ignored; create the Workload; `stopJob` on eviction, then clear the admission once the job is not
  active (`RayJob.IsActive`: not Suspended and not New, `pkg/controller/jobs/rayjob/rayjob_controller.go`);
  `startJob` unsuspends an admitted job; a running job without admission is suspended; `Finished` marks the
  Workload), `pkg/workload/workload.go` (`SetQuotaReservation` resets Evicted/Preempted,
  `UnsetQuotaReservationWithCondition`), `pkg/workload/evict/evict.go` (Evicted reason, `DeactivatedDueTo<cause>`),
  `pkg/controller/core/workload_controller.go` (deactivation, `LocalQueue %s doesn't exist` as Misconfigured).
  Scheduling decisions (admit, preempt, readiness timeout, deactivate) are explicit steps of a scenario.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import kopf
from operator_docs import FakeClient

from vlmtune.spec.metadata import QUEUE_LABEL
from vlmtune_operator.errors import RayJobRefused
from vlmtune_operator.job_handlers import reconcile, refresh_status
from vlmtune_operator.rayjob import rayjob_name
from vlmtune_operator.status import can_still_run
from vlmtune_operator.stores import Stores

FINALIZER = "ray.io/rayjob-finalizer"


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def condition(kind: str, status: str, reason: str, message: str, now: datetime) -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": iso(now)}


def set_condition(workload: dict, new: dict) -> None:
    """apimeta.SetStatusCondition: the transition time moves only when the status changes."""
    conditions = workload.setdefault("status", {}).setdefault("conditions", [])
    for index, old in enumerate(conditions):
        if old["type"] == new["type"]:
            if old["status"] == new["status"]:
                new = dict(new, lastTransitionTime=old["lastTransitionTime"])
            conditions[index] = new
            return
    conditions.append(new)


def condition_of(workload: dict | None, kind: str) -> dict:
    return next((c for c in ((workload or {}).get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


@dataclass
class RayApp:
    """What the Ray job inside a RayJob's cluster does (KubeRay learns it from the dashboard's GetJobInfo)."""

    cluster_ready: bool = True
    job_status: str = "RUNNING"
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""


class Cluster(FakeClient):
    """The API facade the handlers use, over objects that KubeRay's and Kueue's state machines move."""

    def __init__(self, now: datetime):
        super().__init__()
        self.now = now
        self.apps: dict[str, RayApp] = {}
        self.kuberay_down = False
        self.kueue_down = False
        self.kueue_never_unsuspends = False  # kueue#13413: admitted, but the job is never started
        self.manage_jobs_without_queue_name = False
        self.missing_queues: set[str] = set()
        self.refuse = None  # RayJob -> the admission denial's message, or None to admit it
        self.deleted_workloads: list[str] = []

    # -- the facade (what the operator may do)

    def create_rayjob(self, namespace, body):
        """Create, or (409) return the RayJob of that name; every created object gets its own uid.

        Raises:
            RayJobRefused: when `refuse` (an admission policy of the scenario) finds something to refuse.
        """
        if self.refuse is not None and self.refuse(body):
            raise RayJobRefused(f"the API server refused RayJob {body['metadata']['name']}: {self.refuse(body)}")
        self.creates += 1
        key = (namespace, body["metadata"]["name"])
        if key not in self.rayjobs:
            stored = copy.deepcopy(body)
            stored["metadata"].update(
                namespace=namespace, uid=f"rayjob-uid-{self.creates}", creationTimestamp=iso(self.now)
            )
            self.rayjobs[key] = stored
        return copy.deepcopy(self.rayjobs[key])

    def delete_rayjob(self, namespace, name, uid):
        found = self.rayjobs.get((namespace, name))
        if found is None or found["metadata"]["uid"] != uid:
            return
        self.deletes.append((namespace, name))
        if FINALIZER in found["metadata"].get("finalizers", []):
            found["metadata"]["deletionTimestamp"] = iso(self.now)  # KubeRay stops the Ray job, then lets go
        else:
            self._gone(namespace, name)

    def _gone(self, namespace: str, name: str) -> None:
        rayjob = self.rayjobs.pop((namespace, name))
        if self.workloads.pop(rayjob["metadata"]["uid"], None) is not None:  # owner reference: garbage-collected
            self.deleted_workloads.append(rayjob["metadata"]["uid"])

    # -- helpers for scenarios

    def rayjob(self, namespace: str, name: str) -> dict | None:
        return self.rayjobs.get((namespace, name))

    def workload_of(self, rayjob: dict | None) -> dict | None:
        return self.workloads.get(rayjob["metadata"]["uid"]) if rayjob else None

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # -- KubeRay v1.7.0 rayjob_controller.go

    def kuberay(self) -> None:
        if self.kuberay_down:
            return
        for (namespace, name), rayjob in list(self.rayjobs.items()):
            self._kuberay_reconcile(namespace, name, rayjob)

    def _kuberay_reconcile(self, namespace: str, name: str, rayjob: dict) -> None:
        meta, spec = rayjob["metadata"], rayjob["spec"]
        status = rayjob.setdefault("status", {})
        if meta.get("deletionTimestamp"):
            self._gone(namespace, name)
            return
        state = status.get("jobDeploymentStatus", "")
        app = self.apps.setdefault(meta["uid"], RayApp())
        if state == "":
            meta.setdefault("finalizers", []).append(FINALIZER)
            status.update(jobDeploymentStatus="Initializing", startTime=iso(self.now), jobStatus="")
        elif state in ("Initializing", "Running"):
            if spec.get("suspend"):
                status["jobDeploymentStatus"] = "Suspending"
            elif self._past_active_deadline(rayjob):
                status.update(
                    jobDeploymentStatus="Failed",
                    reason="DeadlineExceeded",
                    message="The RayJob has passed the activeDeadlineSeconds.",
                )
            elif state == "Initializing" and app.cluster_ready:
                status.update(jobDeploymentStatus="Running", dashboardURL=f"{name}-head-svc.{namespace}.svc:8265")
            elif state == "Running":
                self._ray_job_state(rayjob, app)
        elif state in ("Suspending", "Retrying"):
            for key in ("dashboardURL", "message", "reason", "startTime", "endTime"):
                status.pop(key, None)
            status.update(jobStatus="", jobDeploymentStatus="Suspended" if state == "Suspending" else "")
        elif state == "Suspended" and not spec.get("suspend"):
            status.update(jobStatus="", jobDeploymentStatus="")

    def _past_active_deadline(self, rayjob: dict) -> bool:
        deadline, start = rayjob["spec"].get("activeDeadlineSeconds"), rayjob["status"].get("startTime")
        return (
            deadline is not None
            and start is not None
            and self.now >= datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(seconds=deadline)
        )

    def _ray_job_state(self, rayjob: dict, app: RayApp) -> None:
        status = rayjob["status"]
        status["jobStatus"] = app.job_status
        if app.job_status in ("SUCCEEDED", "STOPPED"):
            status.update(jobDeploymentStatus="Complete", endTime=iso(self.now))
        elif app.job_status == "FAILED":
            failed = status.get("failed", 0) + 1
            status.update(failed=failed, reason="AppFailed", message="the Ray job failed")
            retry = failed < rayjob["spec"].get("backoffLimit", 0) + 1
            status["jobDeploymentStatus"] = "Retrying" if retry else "Failed"

    # -- Kueue v0.19.2 jobframework reconciler + workload controller

    def kueue(self) -> None:
        if self.kueue_down:
            return
        for rayjob in list(self.rayjobs.values()):
            queue = rayjob["metadata"].get("labels", {}).get(QUEUE_LABEL)
            if queue is None and not self.manage_jobs_without_queue_name:
                continue  # "queue-name label is not set, ignoring the job"
            self._kueue_reconcile(rayjob, queue)

    def _kueue_reconcile(self, rayjob: dict, queue: str | None) -> None:
        uid, spec = rayjob["metadata"]["uid"], rayjob["spec"]
        state = (rayjob.get("status") or {}).get("jobDeploymentStatus", "")
        workload = self.workloads.get(uid)
        if workload is None:
            workload = {
                "metadata": {"name": f"rayjob-{uid}"},
                "spec": {"active": True, "queueName": queue},
                "status": {"conditions": []},
            }
            reason, message = (
                ("Misconfigured", f"LocalQueue {queue} doesn't exist")
                if queue in self.missing_queues or queue is None
                else ("Pending", "couldn't assign flavors to pod set workers")
            )
            set_condition(workload, condition("QuotaReserved", "False", reason, message, self.now))
            self.workloads[uid] = workload
        if state in ("Complete", "Failed"):
            set_condition(workload, condition("Finished", "True", "Succeeded", "", self.now))
            return
        admitted = condition_of(workload, "Admitted").get("status") == "True"
        if condition_of(workload, "Evicted").get("status") == "True":
            spec["suspend"] = True  # stopJob
            if state in ("Suspended", "") and condition_of(workload, "QuotaReserved").get("status") == "True":
                evicted = condition_of(workload, "Evicted")
                requeued = evicted["reason"] == "Preempted"
                set_condition(
                    workload, condition("Requeued", str(requeued), evicted["reason"], evicted["message"], self.now)
                )
                self._unset_quota(workload, "PendingEvaluation", evicted["message"])
            return
        if spec.get("suspend"):
            if admitted and not self.kueue_never_unsuspends:
                spec["suspend"] = False  # startJob
            return
        if not admitted:
            spec["suspend"] = True  # "Running job is not admitted by a cluster queue, suspending"

    def _unset_quota(self, workload: dict, reason: str, message: str) -> None:
        set_condition(workload, condition("QuotaReserved", "False", reason, message, self.now))
        set_condition(workload, condition("Admitted", "False", "NoReservation", "", self.now))

    # Scheduler and administrator steps.

    def admit(self, rayjob: dict) -> None:
        workload = self.workload_of(rayjob)
        set_condition(workload, condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved", self.now))
        set_condition(workload, condition("Admitted", "True", "Admitted", "The workload is admitted", self.now))
        for kind in ("Evicted", "Preempted"):  # SetQuotaReservation -> resetActiveCondition
            if condition_of(workload, kind).get("status") == "True":
                set_condition(workload, condition(kind, "False", "QuotaReserved", "Previously: ...", self.now))

    def evict(self, rayjob: dict, reason: str, message: str) -> None:
        set_condition(self.workload_of(rayjob), condition("Evicted", "True", reason, message, self.now))

    def deactivate(self, rayjob: dict, cause: str | None = None) -> None:
        workload = self.workload_of(rayjob)
        workload["spec"]["active"] = False
        reason = f"DeactivatedDueTo{cause}" if cause else "Deactivated"
        message = f"The workload is deactivated due to {cause}" if cause else "The workload is deactivated"
        set_condition(workload, condition("Evicted", "True", reason, message, self.now))

    def reactivate(self, rayjob: dict) -> None:
        workload = self.workload_of(rayjob)
        workload["spec"]["active"] = True
        set_condition(workload, condition("Requeued", "True", "Reactivated", "The workload was reactivated", self.now))


@dataclass
class Job:
    """One job custom resource as the API server stores it, and the operator running on it as kopf would."""

    cluster: Cluster
    body: dict
    runtime: object
    stores: Stores | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> dict:
        return self.body.setdefault("status", {})

    @property
    def rayjob(self) -> dict | None:
        return self.cluster.rayjob(self.body["metadata"]["namespace"], rayjob_name(self.body["kind"], self.name))

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    def change(self) -> None:
        """kopf's create/update/resume handler: one reconcile, its status patch applied (also on failure)."""
        self._run(reconcile)

    def tick(self) -> None:
        """kopf's status timer."""
        self._run(
            lambda body, patch, client, runtime, now: refresh_status(
                body, patch, client, runtime, now, stores=self.stores
            )
        )

    def _run(self, handler) -> None:
        patch = kopf.Patch()
        try:
            handler(self.body, patch, self.cluster, self.runtime, self.cluster.now)
        except (kopf.TemporaryError, kopf.PermanentError) as err:
            self.errors.append(f"{type(err).__name__}: {err}")
        status = self.body.setdefault("status", {})
        for key, value in patch.get("status", {}).items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value

    def edit_spec(self, **changes) -> None:
        self.body["spec"].update(changes)
        self.body["metadata"]["generation"] += 1


def runnable(rayjob: dict | None) -> bool:
    return can_still_run(rayjob)
