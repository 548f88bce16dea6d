"""The operator's one door to the API server: get/create/delete of RayJobs, get/create of jobs, list of Kueue
Workloads, get of the tenant namespaces' object-store Secrets.

Everything else in the operator is pure; this facade is the only module that does I/O, so handlers can be
tested with a fake of it and the real one against an in-memory API server.
"""

from __future__ import annotations

from vlmtune.spec import API_GROUP, KINDS, VERSION, plural_of
from vlmtune_operator.errors import RayJobRefused

JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
ADMISSION_DENIALS = ("denied request", "admission webhook", "ValidatingAdmissionPolicy")
"""Words of a 403 that admission, not RBAC, answered (RBAC's 403 says `cannot create resource`)."""
"""Kueue labels each Workload with the uid of the job object it admits."""


class KubeClient:
    """Custom objects the operator reads and writes, with 404 as None and 409 as "already there"."""

    def __init__(self, api, kueue_api_version: str = "kueue.x-k8s.io/v1beta2", core_api=None):
        from kubernetes.client.exceptions import ApiException

        self._api = api  # kubernetes.client.CustomObjectsApi
        self._core = core_api  # kubernetes.client.CoreV1Api (Secrets)
        self._api_exception = ApiException
        self._kueue_group, self._kueue_version = kueue_api_version.split("/", 1)

    @classmethod
    def from_environment(cls, kueue_api_version: str = "kueue.x-k8s.io/v1beta2") -> KubeClient:
        """In-cluster service-account credentials, else the local kubeconfig."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.CustomObjectsApi(), kueue_api_version, client.CoreV1Api())

    def get_rayjob(self, namespace: str, name: str) -> dict | None:
        return self._get("ray.io", "v1", namespace, "rayjobs", name)

    def create_rayjob(self, namespace: str, body: dict) -> dict:
        """Create `body`; if a RayJob of that name already exists, return the existing one.

        Raises:
            RayJobRefused: admission refused it (422 Invalid, or 403 from an admission policy or webhook, not RBAC).
        """
        try:
            return self._create("ray.io", "v1", namespace, "rayjobs", body, self.get_rayjob)
        except self._api_exception as err:
            if refused_by_admission(err.status, err.body):
                raise RayJobRefused(
                    f"the API server refused RayJob {body['metadata']['name']}: {_server_message(err.body)}"
                ) from None
            raise

    def delete_rayjob(self, namespace: str, name: str, uid: str) -> None:
        """Delete the RayJob `name` if it is still the one with `uid` (never a newer one of the same name); KubeRay
        stops its Ray job, and the owner references take its cluster and Kueue Workload (and so its quota)."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions

        options = V1DeleteOptions(propagation_policy="Background", preconditions=V1Preconditions(uid=uid))
        try:
            self._api.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", name, body=options)
        except self._api_exception as err:
            if err.status not in (404, 409):  # gone already, or replaced by another RayJob of that name
                raise

    def get_secret(self, namespace: str, name: str) -> dict | None:
        """`{"data": {key: text}, "resourceVersion": ...}` of a Secret, or None when it does not exist."""
        import base64

        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except self._api_exception as err:
            if err.status == 404:
                return None
            raise
        data = {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
        return {"data": data, "resourceVersion": secret.metadata.resource_version or ""}

    def get_job(self, namespace: str, name: str, kind: str | None = None) -> dict | None:
        """The job custom resource called `name`: of `kind`, or of whichever vlmtune kind it is."""
        for each in [kind] if kind else KINDS:
            found = self._get(API_GROUP, VERSION, namespace, plural_of(each), name)
            if found is not None:
                return found
        return None

    def create_job(self, namespace: str, body: dict) -> dict:
        """Create the job custom resource `body` (an Experiment's child); if it exists, return the existing one."""
        kind = body["kind"]
        return self._create(
            API_GROUP, VERSION, namespace, plural_of(kind), body, lambda ns, name: self.get_job(ns, name, kind)
        )

    def find_workload(self, namespace: str, owner_uid: str) -> dict | None:
        """The Kueue Workload admitting the object with `owner_uid` (None without Kueue or before it exists)."""
        try:
            listing = self._api.list_namespaced_custom_object(
                self._kueue_group,
                self._kueue_version,
                namespace,
                "workloads",
                label_selector=f"{JOB_UID_LABEL}={owner_uid}",
            )
        except self._api_exception as err:
            if err.status == 404:
                return None
            raise
        items = listing.get("items") or []
        # After a requeue Kueue may briefly hold two; the newest is the one that decides.
        return max(items, key=lambda w: w.get("metadata", {}).get("creationTimestamp") or "", default=None)

    def _create(self, group: str, version: str, namespace: str, plural: str, body: dict, read_back) -> dict:
        try:
            created = self._api.create_namespaced_custom_object(group, version, namespace, plural, body)
            if created is not None:
                return created
            # The generated client decodes only 201; an API server may also answer 200, with the body dropped.
        except self._api_exception as err:
            if err.status != 409:
                raise
        existing = read_back(namespace, body["metadata"]["name"])
        if existing is None:  # deleted between our create and get: let the caller's retry create it
            raise RuntimeError(f"{plural} {body['metadata']['name']} was created but cannot be read back")
        return existing

    def _get(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
        try:
            return self._api.get_namespaced_custom_object(group, version, namespace, plural, name)
        except self._api_exception as err:
            if err.status == 404:
                return None
            raise


def refused_by_admission(status: int | None, body) -> bool:
    """422 (the schema or a policy found it invalid), or a 403 that admission gave; RBAC's 403 is retried (a fixed
    Role lets the next attempt through)."""
    return status == 422 or (status == 403 and any(word in str(body or "") for word in ADMISSION_DENIALS))


def _server_message(body) -> str:
    import json

    try:
        return json.loads(body).get("message") or str(body)
    except (TypeError, ValueError, AttributeError):
        return str(body)
