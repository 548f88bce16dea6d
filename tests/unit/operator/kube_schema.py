"""Offline stand-in for the API server's admission of custom resources, plus KubeRay's and Kueue's own checks.

Order as in kube-apiserver: schema defaults, then the OpenAPI schema (unknown fields rejected wherever the
CRD does not preserve them, the way `kubectl apply --validate=strict` does), then CEL
`x-kubernetes-validations` (transition rules that need `oldSelf` only run on update, so they are skipped).
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[3]
SHARED_CRDS = REPO / ".." / "shared" / "crds"
RAYJOB_CRD = SHARED_CRDS / "kuberay-v1.7.0_ray.io_rayjobs.yaml"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ABSENT = object()
MAX_POD_SETS = 18
"""Kueue v0.19 `jobframework.MaxPodSets` (it was 8 before v0.18)."""


def crd_schema(crd: dict, version: str) -> dict:
    """The openAPIV3Schema of `version` in a CRD document."""
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def load_crd(path: Path) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the KubeRay CRD is 1.4 MB: libyaml is 20x faster
    return next(doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc)


def apply_defaults(schema: dict, value):
    """A copy of `value` with every missing property that has a schema default filled in, recursively."""
    value = copy.deepcopy(value)
    _default_in_place(schema, value)
    return value


def _default_in_place(schema: dict, value) -> None:
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_in_place(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(schema.get("properties") or {}):
                _default_in_place(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_in_place(schema["items"], item)


def to_json_schema(node: dict) -> dict:
    """OpenAPI v3.0 (Kubernetes dialect) -> strict JSON Schema 2020-12."""
    out = {key: value for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*(_as_list(out["type"])), "null"]
    out.pop("nullable", None)
    for bound in ("Minimum", "Maximum"):
        if out.get(f"exclusive{bound}") is True:
            out[f"exclusive{bound}"] = out.pop(bound.lower())
        elif out.get(f"exclusive{bound}") is False:
            out.pop(f"exclusive{bound}")
    if "properties" in node:
        out["properties"] = {name: to_json_schema(sub) for name, sub in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        out["items"] = to_json_schema(node["items"])
    return out


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def schema_errors(schema: dict, value) -> list[str]:
    validator = jsonschema.Draft202012Validator(to_json_schema(schema))
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(value)
    ]


@functools.cache
def _program(rule: str):
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def cel_errors(schema: dict, value, path: str = "", old=_ABSENT) -> list[str]:
    """Evaluate every `x-kubernetes-validations` rule that applies to a present value.

    Args:
        old: the stored value at this node on an update; transition rules (those naming `oldSelf`) run only where
            the old value exists, as on the API server. Absent (a create): they are skipped.
    """
    import celpy

    errors = []
    for rule in schema.get("x-kubernetes-validations") or []:
        transition = "oldSelf" in rule["rule"]
        if transition and old is _ABSENT:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        if not bool(_program(rule["rule"]).evaluate(activation)):
            errors.append(f"{path or '<root>'}: {rule.get('message') or rule['rule']}")
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                before = old[name] if isinstance(old, dict) and name in old else _ABSENT
                errors += cel_errors(sub, value[name], f"{path}.{name}".lstrip("."), before)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        # List items are correlated with their old selves only in map lists (by key); others get create semantics.
        for index, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def metadata_errors(meta: dict) -> list[str]:
    """What the API server checks of ObjectMeta that a CRD schema cannot express."""
    errors = []
    name = meta.get("name", "")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        if not _qualified(key):
            errors.append(f"metadata.labels: bad key {key!r}")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"metadata.labels[{key}]: bad value {value!r}")
    for key in meta.get("annotations") or {}:
        if not _qualified(key):
            errors.append(f"metadata.annotations: bad key {key!r}")
    return errors


def _qualified(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return (
        (not prefix or (len(prefix) <= 253 and bool(_DNS1123_SUBDOMAIN.match(prefix))))
        and len(name) <= 63
        and bool(_QUALIFIED_NAME.match(name))
    )


def admit(schema: dict, obj: dict, old: dict | None = None) -> tuple[dict, list[str]]:
    """Default, then validate `obj` like the API server; returns the defaulted object and every error.

    Args:
        old: the stored object when `obj` updates it (transition rules such as `self == oldSelf` then run).
    """
    defaulted = apply_defaults(schema, obj)
    errors = metadata_errors(obj.get("metadata") or {}) + schema_errors(schema, defaulted)
    before = _ABSENT if old is None else apply_defaults(schema, old)
    return defaulted, errors + (cel_errors(schema, defaulted, old=before) if not errors else [])


def kuberay_errors(rayjob: dict) -> list[str]:
    """KubeRay's ValidateRayJobMetadata / ValidateRayJobSpec / ValidateRayClusterSpec (v1.7) as they apply."""
    errors, spec = [], rayjob["spec"]
    name = rayjob["metadata"]["name"]
    if len(name) > 47 or not _DNS1035.match(name):
        errors.append(f"name {name!r}: at most 47 characters and a DNS-1035 label")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        errors.append("a suspended RayJob must set shutdownAfterJobFinishes")
    if spec.get("ttlSecondsAfterFinished", 0) < 0 or spec.get("backoffLimit", 0) < 0:
        errors.append("ttlSecondsAfterFinished and backoffLimit must not be negative")
    if spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 0:
        errors.append("activeDeadlineSeconds must be positive")
    cluster = spec.get("rayClusterSpec")
    if cluster is None:
        return errors + ["rayClusterSpec is required without clusterSelector"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    for group in groups:
        if not group["template"]["spec"].get("containers"):
            errors.append("every group needs at least one container")
        starts = group.get("rayStartParams") or {}
        if group.get("resources") and any(k in starts for k in ("num-cpus", "num-gpus", "memory", "resources")):
            errors.append("resources set both in rayStartParams and in the group's resources")
    for worker in cluster.get("workerGroupSpecs", []):
        if not worker["minReplicas"] <= worker.get("replicas", worker["minReplicas"]) <= worker["maxReplicas"]:
            errors.append(f"worker group {worker['groupName']}: replicas outside [minReplicas, maxReplicas]")
    return errors


def kueue_errors(rayjob: dict) -> list[str]:
    """Kueue's RayJob webhook (v0.19) for a job that names a LocalQueue."""
    from vlmtune.spec.metadata import PRIORITY_LABEL, QUEUE_LABEL

    labels, spec = rayjob["metadata"].get("labels") or {}, rayjob["spec"]
    queue = labels.get(QUEUE_LABEL)
    if queue is None:
        return []
    errors = [] if _DNS1123_SUBDOMAIN.match(queue) else [f"queue name {queue!r} is not a DNS subdomain"]
    priority = labels.get(PRIORITY_LABEL)
    if priority is not None and not _DNS1123_SUBDOMAIN.match(priority):
        errors.append(f"priority class {priority!r} is not a DNS subdomain")
    if spec.get("clusterSelector"):
        errors.append("a Kueue-managed RayJob must not use an existing cluster (clusterSelector)")
    cluster = spec.get("rayClusterSpec")
    if cluster is None:
        return errors + ["rayClusterSpec is required for Kueue-managed jobs"]
    if not spec.get("shutdownAfterJobFinishes"):
        errors.append("a Kueue-managed RayJob must delete its cluster when it finishes")
    # workloadslicing.Enabled: the annotation's value must be exactly "true" (and the feature gate on).
    if (
        cluster.get("enableInTreeAutoscaling")
        and (rayjob["metadata"].get("annotations") or {}).get("kueue.x-k8s.io/elastic-job") != "true"
    ):
        errors.append("in-tree autoscaling needs an elastic (workload-slicing) job")
    workers = cluster.get("workerGroupSpecs", [])
    submitter = 1 if spec.get("submissionMode", "K8sJobMode") == "K8sJobMode" else 0
    if 1 + len(workers) + submitter > MAX_POD_SETS:
        errors.append(f"{1 + len(workers) + submitter} pod sets; Kueue allows {MAX_POD_SETS}")
    errors += [f"worker group name {w['groupName']!r} is reserved" for w in workers if w["groupName"] == "head"]
    return errors
