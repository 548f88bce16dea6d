"""Offline admission of rendered chart objects.

Built-in kinds: kubernetes-validate, strict (unknown fields rejected), against a recent Kubernetes.
Kueue kinds: the real Kueue v0.19.2 CRDs from ../shared/crds (schema defaults, strict JSON schema, CEL rules via
the operator tests' `kube_schema`), then what Kueue's ClusterQueue/Cohort webhooks check beyond the CRD.
"""

from __future__ import annotations

import importlib.util
import re
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHARED_CRDS = REPO.parent / "shared" / "crds"
KUBERNETES_VERSION = "1.35"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_CRD_FILES = {
    "ClusterQueue": "kueue-v0.19.2_kueue.x-k8s.io_clusterqueues.yaml",
    "Cohort": "kueue-v0.19.2_kueue.x-k8s.io_cohorts.yaml",
    "LocalQueue": "kueue-v0.19.2_kueue.x-k8s.io_localqueues.yaml",
    "ResourceFlavor": "kueue-v0.19.2_kueue.x-k8s.io_resourceflavors.yaml",
    "WorkloadPriorityClass": "kueue-v0.19.2_kueue.x-k8s.io_workloadpriorityclasses.yaml",
}
_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def _load_kube_schema():
    """tests/unit/operator/kube_schema.py: one offline API-server admission for the whole test suite."""
    path = REPO / "tests" / "unit" / "operator" / "kube_schema.py"
    spec = importlib.util.spec_from_file_location("_vlmtune_kube_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kube_schema = _load_kube_schema()


def builtin_errors(obj: dict) -> list[str]:
    """kubernetes-validate (strict) plus the ObjectMeta rules a JSON schema cannot express."""
    import kubernetes_validate

    errors = kube_schema.metadata_errors(obj.get("metadata") or {})
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        errors.append(f"{'.'.join(map(str, err.path)) or '<root>'}: {err.message}")
    return errors


def kueue_schemas(folder: Path = SHARED_CRDS) -> dict[tuple[str, str], dict]:
    """(kind, version) -> openAPIV3Schema of every version the Kueue CRDs serve."""
    schemas = {}
    for kind, filename in KUEUE_CRD_FILES.items():
        crd = kube_schema.load_crd(folder / filename)
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schemas[kind, version["name"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def kueue_errors(obj: dict, schemas: dict) -> list[str]:
    """Admission of a Kueue object: CRD defaults + schema + CEL, then Kueue's validating webhooks."""
    group, _, version = obj["apiVersion"].partition("/")
    assert group == KUEUE_GROUP, obj["apiVersion"]
    schema = schemas.get((obj["kind"], version))
    if schema is None:
        return [f"{obj['kind']} {obj['apiVersion']} is not served by the Kueue v0.19.2 CRDs"]
    defaulted, errors = kube_schema.admit(schema, obj)
    if obj["kind"] in ("ClusterQueue", "Cohort") and not errors:
        errors += kueue_webhook_errors(defaulted)
    return errors


def kueue_webhook_errors(obj: dict) -> list[str]:
    """Kueue's ClusterQueue/Cohort webhook (validateResourceGroups, validateFlavorQuotas, label selector)."""
    spec, errors = obj.get("spec") or {}, []
    has_parent = bool(spec.get("cohortName") if obj["kind"] == "ClusterQueue" else spec.get("parentName"))
    seen_resources: set[str] = set()
    seen_flavors: set[str] = set()
    for i, group in enumerate(spec.get("resourceGroups") or []):
        path = f"spec.resourceGroups[{i}]"
        for name in group["coveredResources"]:
            if name in seen_resources:
                errors.append(f"{path}.coveredResources: duplicate {name}")
            seen_resources.add(name)
        for j, flavor in enumerate(group["flavors"]):
            fpath = f"{path}.flavors[{j}]"
            if flavor["name"] in seen_flavors:
                errors.append(f"{fpath}.name: duplicate {flavor['name']}")
            seen_flavors.add(flavor["name"])
            for k, (quota, covered) in enumerate(zip(flavor["resources"], group["coveredResources"])):
                qpath = f"{fpath}.resources[{k}]"
                if quota["name"] != covered:
                    errors.append(f"{qpath}.name: {quota['name']} must match the name in coveredResources ({covered})")
                nominal = quantity(quota["nominalQuota"])
                if nominal < 0:
                    errors.append(f"{qpath}.nominalQuota: must be greater than or equal to 0")
                for limit in ("borrowingLimit", "lendingLimit"):
                    if limit in quota:
                        if not has_parent:
                            errors.append(f"{qpath}.{limit}: must be nil when cohort is empty")
                        if quantity(quota[limit]) < 0:
                            errors.append(f"{qpath}.{limit}: must be greater than or equal to 0")
                if "lendingLimit" in quota and quantity(quota["lendingLimit"]) > nominal:
                    errors.append(f"{qpath}.lendingLimit: must be less than or equal to the nominalQuota")
    return errors + label_selector_errors(spec.get("namespaceSelector"), "spec.namespaceSelector")


def label_selector_errors(selector: dict | None, path: str) -> list[str]:
    """metav1 ValidateLabelSelector: In/NotIn need values, Exists/DoesNotExist take none."""
    errors = []
    for i, requirement in enumerate((selector or {}).get("matchExpressions") or []):
        values = requirement.get("values") or []
        if requirement["operator"] in ("In", "NotIn") and not values:
            errors.append(f"{path}.matchExpressions[{i}].values: must be specified for {requirement['operator']}")
        if requirement["operator"] in ("Exists", "DoesNotExist") and values:
            errors.append(f"{path}.matchExpressions[{i}].values: may not be specified for {requirement['operator']}")
    return errors


def quantity(value) -> Decimal:
    """A Kubernetes resource.Quantity as a number ("64Gi", "500m", 8, "1e3")."""
    text = str(value)
    match = re.fullmatch(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)", text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    if exponent:
        return Decimal(number + exponent)
    return Decimal(number) * Decimal(_SUFFIXES[suffix or ""])
