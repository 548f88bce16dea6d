"""The chart renders for the defaults and every ci/ scenario, lints strictly, and every object it renders is one the
API server would admit: built-in kinds by kubernetes-validate (strict), Kueue kinds by the real Kueue v0.19.2 CRDs
(defaults, schema, CEL) and Kueue's webhook rules. The validators are shown to bite, so a pass means something."""

from __future__ import annotations

import copy

import pytest
import yaml
from chart_engine import CHART, CLUSTER_SCOPED, NAMESPACE, SCENARIOS, chart, lint, render
from chart_validate import KUBERNETES_VERSION, KUEUE_GROUP, builtin_errors, kueue_errors
from karpenter_schema import nodepool_errors

from vlmtune.spec import KINDS

KUBERAY_MIN, KUEUE_MIN = "1.5.0", "0.16.0"
CUSTOM_GROUPS = (KUEUE_GROUP + "/", "karpenter.sh/")


def test_the_three_ci_scenarios_exist():
    assert {"one-tenant", "three-tenants-borrowing", "autoscaling"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_objects_are_well_formed_and_unique(rendered, scenario):
    seen = set()
    for obj in rendered[scenario].objects:
        meta = obj["metadata"]
        key = (obj["apiVersion"].split("/")[0], obj["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"cluster-scoped {obj['kind']}/{meta['name']} has a namespace"
        else:
            assert meta.get("namespace"), (
                f"{obj['kind']}/{meta['name']} has no namespace (kubectl apply -n would move it)"
            )
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_builtin_objects_pass_strict_kubernetes_validation(rendered, scenario):
    builtin = [obj for obj in rendered[scenario].objects if not obj["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert {"Deployment", "ServiceAccount", "ConfigMap", "ClusterRole"} <= {obj["kind"] for obj in builtin}
    for obj in builtin:
        errors = builtin_errors(obj)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {KUBERNETES_VERSION}): {errors}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kueue_objects_are_admitted_by_the_kueue_crds(rendered, scenario, kueue_crd_schemas):
    kueue = [obj for obj in rendered[scenario].objects if obj["apiVersion"].startswith(KUEUE_GROUP + "/")]
    assert {obj["kind"] for obj in kueue} == {
        "ResourceFlavor",
        "Cohort",
        "ClusterQueue",
        "LocalQueue",
        "WorkloadPriorityClass",
    }
    for obj in kueue:
        assert obj["apiVersion"] == "kueue.x-k8s.io/v1beta2"  # Kueue's storage version since v0.16
        errors = kueue_errors(obj, kueue_crd_schemas)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_karpenter_nodepools_pass_the_focused_karpenter_check(rendered, scenario):
    # Not the upstream CRD (none is in ../shared/crds): karpenter_schema.py is written from the karpenter.sh/v1 API.
    nodepools = [obj for obj in rendered[scenario].objects if obj["apiVersion"].startswith("karpenter.sh/")]
    karpenter_pools = [
        p
        for p in rendered[scenario].values["nodePools"]
        if p.get("autoscaling", {}).get("provider", rendered[scenario].values["autoscaling"]["provider"]) == "karpenter"
    ]
    assert len(nodepools) == len(karpenter_pools)
    for obj in nodepools:
        assert obj["kind"] == "NodePool"
        errors = nodepool_errors(obj)
        assert not errors, f"NodePool/{obj['metadata']['name']}: {errors}"


def test_the_kueue_validator_bites(rendered, kueue_crd_schemas):
    queue = rendered["three-tenants-borrowing"].of_kind("ClusterQueue")[0]

    def errors_after(change) -> list[str]:
        broken = copy.deepcopy(queue)
        change(broken["spec"])
        return kueue_errors(broken, kueue_crd_schemas)

    def never_reclaim(spec):
        spec["preemption"] = {"reclaimWithinCohort": "Never", "borrowWithinCohort": {"policy": "LowerPriority"}}

    assert any("reclaimWithinCohort=Never" in e for e in errors_after(never_reclaim))  # a CEL rule
    assert any("'quota' was unexpected" in e for e in errors_after(lambda s: s.update(quota=1)))  # strict schema
    flavor = queue["spec"]["resourceGroups"][0]["flavors"][1]["resources"]
    assert any(
        "must match the name in coveredResources" in e
        for e in errors_after(lambda s: s["resourceGroups"][0]["flavors"][1]["resources"].reverse())
    )
    assert flavor[-1].get("lendingLimit")  # the scenario lends GPUs; lending more than the nominal is refused:
    assert any(
        "less than or equal to the nominalQuota" in e
        for e in errors_after(
            lambda s: s["resourceGroups"][0]["flavors"][1]["resources"][-1].update(lendingLimit="1000")
        )
    )
    assert any("must be nil when cohort is empty" in e for e in errors_after(lambda s: s.pop("cohortName")))


def test_the_builtin_validator_bites(rendered):
    deployment = copy.deepcopy(rendered["default"].one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = True
    assert builtin_errors(deployment)


def test_our_crds_ship_in_helms_crds_folder_and_are_valid():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    # crds/ is generated (`vlmtune crds --write charts/vlmtune/crds`); tests/unit/spec/test_crd.py guards its drift.
    shipped = {crd["name"]: yaml.safe_load(crd["data"]) for crd in chart().crds}
    assert sorted(shipped) == sorted(f"crds/{path.name}" for path in (CHART / "crds").glob("*.yaml"))
    assert sorted(crd["spec"]["names"]["kind"] for crd in shipped.values()) == sorted(KINDS)
    for crd in shipped.values():
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
        assert crd["spec"]["group"] == "vlmtune.dev" and crd["spec"]["scope"] == "Namespaced"
        assert [v["subresources"] for v in crd["spec"]["versions"]] == [{"status": {}}]  # RBAC grants <plural>/status


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(scenario):
    # No dependencies: the chart from the checkout lints clean under --strict with nothing fetched.
    report = lint(scenario)
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]


def test_optional_controllers_live_in_the_umbrella_chart_pinned_to_tested_versions():
    metadata = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert metadata["appVersion"] == "0.1.0" and chart().metadata["appVersion"] == "0.1.0"
    assert "dependencies" not in metadata and chart().dependencies == []  # installs offline from a checkout
    stack = yaml.safe_load((CHART.parent / "vlmtune-stack" / "Chart.yaml").read_text())
    dependencies = {d["name"]: d for d in stack["dependencies"]}
    assert dependencies["vlmtune"] == {
        "name": "vlmtune",
        "version": metadata["version"],
        "repository": "file://../vlmtune",
    }
    assert dependencies["kuberay-operator"]["condition"] == "kuberay-operator.enabled"
    assert dependencies["kueue"]["condition"] == "kueue.enabled"

    # The versions whose CRDs the tests validate against (../shared/crds), within what the chart supports.
    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    assert dependencies["kuberay-operator"]["version"] == "1.7.0" and version("1.7.0") >= version(KUBERAY_MIN)
    assert dependencies["kueue"]["version"] == "0.19.2" and version("0.19.2") >= version(KUEUE_MIN)


def test_release_namespace_and_name_are_honoured():
    out = render(name="tune", namespace="platform")
    assert out.one("Deployment")["metadata"] == {
        **out.one("Deployment")["metadata"],
        "name": "tune-vlmtune-operator",
        "namespace": "platform",
    }
    assert out.one("ClusterRoleBinding", "tune-vlmtune-operator-discovery")["subjects"][0]["namespace"] == "platform"
    assert NAMESPACE != "platform"
