"""A focused structural check of the Karpenter NodePools the chart renders (karpenter.sh/v1).

No Karpenter CRD is in ../shared/crds, so this is NOT the upstream CRD file. It is a closed JSON Schema written from
the karpenter.sh/v1 NodePool API (kubernetes-sigs/karpenter `pkg/apis/crds/karpenter.sh_nodepools.yaml` and the
copy in aws/karpenter-provider-aws, read while writing the chart) for exactly the fields the chart renders, plus
the CEL rules on those fields re-stated in Python: restricted label domains, `In` needs values, non-empty
nodeClassRef parts, a budget's schedule and duration go together. Fields the chart never renders are refused, so a
typo or a field from an older API (v1beta1 `consolidationPolicy: WhenUnderutilized`, `spec.disruption.expireAfter`)
fails here.
"""

from __future__ import annotations

import re

import jsonschema

API_VERSION = "karpenter.sh/v1"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION = r"^(([0-9]+(s|m|h))+)|(Never)$"
BUDGET_NODES = r"^((100|[0-9]{1,2})%|[0-9]+)$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_TAINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "effect"],
    "properties": {
        "key": {"type": "string", "minLength": 1, "pattern": LABEL_KEY},
        "value": {"type": "string", "pattern": LABEL_KEY},
        "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
    },
}
_REQUIREMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "operator"],
    "properties": {
        "key": {"type": "string", "maxLength": 316, "pattern": LABEL_KEY},
        "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]},
        "values": {"type": "array", "items": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}},
        "minValues": {"type": "integer", "minimum": 1, "maximum": 50},
    },
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": "NodePool"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "labels": _STRING_MAP, "annotations": _STRING_MAP},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["template"],
            "properties": {
                "template": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["spec"],
                    "properties": {
                        "metadata": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "labels": {
                                    "type": "object",
                                    "maxProperties": 100,
                                    "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
                                },
                                "annotations": _STRING_MAP,
                            },
                        },
                        "spec": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["nodeClassRef", "requirements"],
                            "properties": {
                                "nodeClassRef": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["group", "kind", "name"],
                                    "properties": {
                                        "group": {"type": "string", "pattern": "^[^/]*$"},
                                        "kind": {"type": "string"},
                                        "name": {"type": "string"},
                                    },
                                },
                                "requirements": {"type": "array", "maxItems": 100, "items": _REQUIREMENT},
                                "taints": {"type": "array", "items": _TAINT},
                                "startupTaints": {"type": "array", "items": _TAINT},
                                "expireAfter": {"type": "string", "pattern": DURATION},
                                "terminationGracePeriod": {"type": "string", "pattern": r"^([0-9]+(s|m|h))+$"},
                            },
                        },
                    },
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": {"type": ["integer", "string"], "pattern": QUANTITY},
                },
                "disruption": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["consolidateAfter"],
                    "properties": {
                        "consolidationPolicy": {"enum": ["WhenEmpty", "WhenEmptyOrUnderutilized"]},
                        "consolidateAfter": {"type": "string", "pattern": DURATION},
                        "budgets": {
                            "type": "array",
                            "maxItems": 50,
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["nodes"],
                                "properties": {
                                    "nodes": {"type": "string", "pattern": BUDGET_NODES},
                                    "schedule": {"type": "string"},
                                    "duration": {
                                        "type": "string",
                                        "pattern": r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$",
                                    },
                                    "reasons": {
                                        "type": "array",
                                        "items": {"enum": ["Underutilized", "Empty", "Drifted"]},
                                    },
                                },
                            },
                        },
                    },
                },
                "weight": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
    },
}

# Label keys under kubernetes.io that nodes may be selected or labelled by (the rest of the domain is kubelet's).
_KUBERNETES_IO_ALLOWED = {
    "beta.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "node.kubernetes.io/windows-build",
}
# Well-known labels of the AWS provider's own domain (its CRD refuses any other karpenter.k8s.aws key).
_AWS_WELL_KNOWN = {
    f"karpenter.k8s.aws/{name}"
    for name in (
        "ec2nodeclass",
        "instance-encryption-in-transit-supported",
        "instance-category",
        "instance-hypervisor",
        "instance-family",
        "instance-generation",
        "instance-local-nvme",
        "instance-size",
        "instance-cpu",
        "instance-cpu-manufacturer",
        "instance-cpu-sustained-clock-speed-mhz",
        "instance-memory",
        "instance-ebs-bandwidth",
        "instance-network-bandwidth",
        "instance-gpu-name",
        "instance-gpu-manufacturer",
        "instance-gpu-count",
        "instance-gpu-memory",
        "instance-accelerator-name",
        "instance-accelerator-manufacturer",
        "instance-accelerator-count",
    )
}


def restricted_label(key: str) -> str | None:
    """Why Karpenter refuses `key` as a requirement or template label, or None when it is allowed."""
    domain = key.split("/", 1)[0] if "/" in key else ""
    if key in ("karpenter.sh/nodepool", "kubernetes.io/hostname"):
        return f'label "{key}" is restricted'
    if (
        domain.endswith("kubernetes.io")
        and key not in _KUBERNETES_IO_ALLOWED
        and not domain.endswith(("node.kubernetes.io", "node-restriction.kubernetes.io"))
    ):
        return 'label domain "kubernetes.io" is restricted'
    if domain.endswith("k8s.io") and not domain.endswith("kops.k8s.io"):
        return 'label domain "k8s.io" is restricted'
    if domain.endswith("karpenter.sh") and key != "karpenter.sh/capacity-type":
        return 'label domain "karpenter.sh" is restricted'
    if domain.endswith("karpenter.k8s.aws") and key not in _AWS_WELL_KNOWN:
        return 'label domain "karpenter.k8s.aws" is restricted'
    return None


def nodepool_errors(obj: dict) -> list[str]:
    """Every way `obj` breaks the karpenter.sh/v1 NodePool schema and rules above (empty: accepted)."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    return errors or _rule_errors(obj["spec"])


def _rule_errors(spec: dict) -> list[str]:
    template = spec["template"]
    errors = [
        f"spec.template.spec.nodeClassRef.{part}: {part} may not be empty"
        for part in ("group", "kind", "name")
        if not template["spec"]["nodeClassRef"][part]
    ]
    for index, requirement in enumerate(template["spec"]["requirements"]):
        path = f"spec.template.spec.requirements[{index}]"
        if why := restricted_label(requirement["key"]):
            errors.append(f"{path}.key: {why}")
        values = requirement.get("values") or []
        if requirement["operator"] == "In" and not values:
            errors.append(f"{path}: requirements with operator 'In' must have a value defined")
        if requirement["operator"] in ("Gt", "Lt") and not (len(values) == 1 and re.fullmatch(r"\d+", values[0])):
            errors.append(f"{path}: requirements operator 'Gt' or 'Lt' must have a single positive integer value")
        if "minValues" in requirement and requirement["operator"] == "In" and len(values) < requirement["minValues"]:
            errors.append(f"{path}: requirements with 'minValues' must have at least that many values")
    for key in (template.get("metadata") or {}).get("labels") or {}:
        if not re.fullmatch(LABEL_KEY, key):
            errors.append(f"spec.template.metadata.labels: bad key {key!r}")
        elif why := restricted_label(key):
            errors.append(f"spec.template.metadata.labels: {why}")
    for index, budget in enumerate((spec.get("disruption") or {}).get("budgets") or []):
        if ("schedule" in budget) != ("duration" in budget):
            errors.append(f"spec.disruption.budgets[{index}]: 'schedule' must be set with 'duration'")
    return errors
