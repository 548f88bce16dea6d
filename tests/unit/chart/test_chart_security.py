"""Static security scan of everything the chart renders, for the defaults and every ci/ scenario: pod templates
meet Pod Security `restricted`, no Secret and no credential-looking value is rendered, RBAC grants no wildcards,
no secrets access and no privilege-escalation verbs, created tenant namespaces enforce a Pod Security level, and
NetworkPolicies are on by default. Each rule is shown to bite on a broken copy, so a pass means something."""

from __future__ import annotations

import copy
import re

import pytest
from chart_engine import SCENARIOS

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
SAFE_VOLUMES = {
    "configMap",
    "emptyDir",
    "projected",
    "secret",
    "downwardAPI",
    "persistentVolumeClaim",
    "ephemeral",
    "csi",
}
ESCALATING_VERBS = {"escalate", "bind", "impersonate", "*"}
CREDENTIAL = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|(?i:password|secret_?access_?key)\s*[:=]")


def _pod_spec(obj: dict) -> dict:
    template = (
        obj["spec"]["jobTemplate"]["spec"]["template"]
        if obj["kind"] == "CronJob"
        else obj
        if obj["kind"] == "Pod"
        else obj["spec"]["template"]
    )
    return template["spec"] if obj["kind"] != "Pod" else obj["spec"]


def pod_findings(obj: dict) -> list[str]:
    """Pod Security `restricted` (plus read-only root, pinned images, limits) for one workload object."""
    spec, name = _pod_spec(obj), f"{obj['kind']}/{obj['metadata']['name']}"
    pod_context = spec.get("securityContext") or {}
    findings = [f"{name}: {field}" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    findings += [
        f"{name}: volume {v['name']} is {set(v) - {'name'}}"
        for v in spec.get("volumes") or []
        if not set(v) - {"name"} <= SAFE_VOLUMES
    ]
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        where, context = f"{name} container {container['name']}", container.get("securityContext") or {}
        merged = {**pod_context, **context}
        if merged.get("runAsNonRoot") is not True or merged.get("runAsUser") == 0:
            findings.append(f"{where}: may run as root")
        if context.get("privileged") or context.get("allowPrivilegeEscalation") is not False:
            findings.append(f"{where}: privilege escalation allowed")
        capabilities = context.get("capabilities") or {}
        if capabilities.get("drop") != ["ALL"] or set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            findings.append(f"{where}: capabilities not dropped")
        if (merged.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            findings.append(f"{where}: no seccomp profile")
        if context.get("readOnlyRootFilesystem") is not True:
            findings.append(f"{where}: writable root filesystem")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            findings.append(f"{where}: hostPort")
        image = container["image"]
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            findings.append(f"{where}: image {image} is not pinned to a tag or digest")
        limits = (container.get("resources") or {}).get("limits") or {}
        if not {"cpu", "memory"} <= set(limits):
            findings.append(f"{where}: no cpu/memory limits")
    return findings


def rbac_findings(obj: dict) -> list[str]:
    findings = []
    for index, rule in enumerate(obj.get("rules") or []):
        where = f"{obj['kind']}/{obj['metadata']['name']} rules[{index}]"
        if "*" in rule.get("apiGroups", []) or "*" in rule.get("resources", []):
            findings.append(f"{where}: wildcard")
        if set(rule.get("verbs", [])) & ESCALATING_VERBS:
            findings.append(f"{where}: verbs {set(rule['verbs']) & ESCALATING_VERBS}")
        if "" in rule.get("apiGroups", []) and "pods/exec" in rule.get("resources", []):
            findings.append(f"{where}: exec access")
        # Secrets only by name and read-only (a tenant's object-store Secret, in the tenant's namespace).
        if (
            "" in rule.get("apiGroups", [])
            and "secrets" in rule.get("resources", [])
            and (not rule.get("resourceNames") or set(rule["verbs"]) != {"get"} or obj["kind"] != "Role")
        ):
            findings.append(f"{where}: secrets beyond a named read in one namespace")
    return findings


def value_findings(obj: dict) -> list[str]:
    if obj["kind"] == "Secret":
        return [f"Secret/{obj['metadata']['name']}: the chart must never render credentials"]
    data = obj.get("data") if obj["kind"] == "ConfigMap" else None
    return [
        f"ConfigMap/{obj['metadata']['name']}: {key} looks like a credential"
        for key, value in (data or {}).items()
        if CREDENTIAL.search(str(value))
    ]


def scan(objects: list[dict]) -> list[str]:
    findings = []
    for obj in objects:
        if obj["kind"] in POD_KINDS:
            findings += pod_findings(obj)
        if obj["kind"] in ("Role", "ClusterRole"):
            findings += rbac_findings(obj)
        if obj["kind"] == "Namespace" and "pod-security.kubernetes.io/enforce" not in obj["metadata"]["labels"]:
            findings.append(f"Namespace/{obj['metadata']['name']}: no Pod Security level enforced")
        findings += value_findings(obj)
    return findings


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_rendered_is_insecure(rendered, scenario):
    objects = rendered[scenario].objects
    assert any(obj["kind"] in POD_KINDS for obj in objects)
    assert scan(objects) == []
    assert rendered[scenario].of_kind("NetworkPolicy"), "NetworkPolicies are on by default"


def test_the_scan_bites(rendered):
    objects = rendered["three-tenants-borrowing"].objects
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    role = next(obj for obj in objects if obj["kind"] in ("Role", "ClusterRole"))
    configmap = next(obj for obj in objects if obj["kind"] == "ConfigMap")

    def findings_after(obj: dict, change) -> list[str]:
        broken = copy.deepcopy(obj)
        change(broken)
        return scan([broken])

    def container(obj: dict) -> dict:
        return obj["spec"]["template"]["spec"]["containers"][0]

    assert findings_after(deployment, lambda d: container(d)["securityContext"].update(runAsUser=0))
    assert findings_after(deployment, lambda d: container(d)["securityContext"].update(allowPrivilegeEscalation=True))
    assert findings_after(
        deployment, lambda d: container(d)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"])
    )
    assert findings_after(deployment, lambda d: container(d)["securityContext"].pop("readOnlyRootFilesystem"))
    assert findings_after(deployment, lambda d: container(d).update(image="vlmtune-operator:latest"))
    assert findings_after(deployment, lambda d: container(d)["resources"].pop("limits"))
    assert findings_after(deployment, lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True))
    assert findings_after(
        deployment,
        lambda d: d["spec"]["template"]["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}}),
    )
    assert findings_after(
        role, lambda r: r["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    )
    assert findings_after(
        role,
        lambda r: r["rules"].append(
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["object-store"], "verbs": ["list"]}
        ),
    )
    assert findings_after(
        role, lambda r: r["rules"].append({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})
    )
    assert findings_after(
        role,
        lambda r: r["rules"].append(
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]}
        ),
    )
    assert findings_after(configmap, lambda c: c["data"].update(extra="aws_secret_access_key = abc"))
    assert scan([{"kind": "Secret", "metadata": {"name": "s"}}])
