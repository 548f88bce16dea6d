"""templates/rbac.yaml grants exactly the rows of charts/vlmtune/rbac-table.yaml, namespaced where it can be, and the
table is exactly what the operator's code does: calls recorded from KubeClient, the owner references it writes,
the kinds it registers with kopf, and the selectors kopf itself uses."""

from __future__ import annotations

import inspect

import pytest
import yaml
from chart_engine import CHART, NAMESPACE, SCENARIOS

from vlmtune.spec import KINDS
from vlmtune.spec.base import API_GROUP
from vlmtune.spec.crd import plural_of

TABLE = yaml.safe_load((CHART / "rbac-table.yaml").read_text(encoding="utf-8"))["rules"]
VERB_OF_METHOD = {
    "get": "get",
    "list": "list",
    "create": "create",
    "patch": "patch",
    "delete": "delete",
    "replace": "update",
}
CLUSTER = "*"


def granted(rendered) -> set[tuple[str, str, str, str, tuple]]:
    """(namespace or "*", group, resource, verb, resourceNames) the rendered RBAC gives the operator's ServiceAccount
    (resourceNames () means every object of the resource)."""
    account = rendered.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj
        for obj in rendered.objects
        if obj["kind"] in ("Role", "ClusterRole")
    }
    grants = set()
    for binding in rendered.objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
        where = binding["metadata"].get("namespace", CLUSTER)
        ref = binding["roleRef"]
        role = roles[(ref["kind"], None if ref["kind"] == "ClusterRole" else where, ref["name"])]
        for rule in role["rules"]:
            assert set(rule) - {"resourceNames"} == {"apiGroups", "resources", "verbs"}, role["metadata"]["name"]
            names = tuple(rule.get("resourceNames") or ())
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    grants |= {(where, group, resource, verb, names) for verb in rule["verbs"]}
    return grants


def expected(values: dict) -> set[tuple[str, str, str, str, tuple]]:
    cluster_wide = values["operator"]["clusterWide"]
    watched = {t["namespace"] for t in values["tenants"]}
    rows = set()
    for row in TABLE:
        if row["scope"] == "tenant":
            for tenant in values["tenants"]:
                name = tenant.get(row["resourceNames"]) or values["runtime"][row["resourceNames"]]
                if name:
                    rows |= {
                        (tenant["namespace"], row["group"], row["resource"], verb, (name,)) for verb in row["verbs"]
                    }
            continue
        if row["scope"] == "jobs":
            places = {CLUSTER} if cluster_wide else watched
        elif row["scope"] == "cluster-when-namespaced":
            places = set() if cluster_wide else {CLUSTER}
        else:
            places = {CLUSTER}
        rows |= {(where, row["group"], row["resource"], verb, ()) for where in places for verb in row["verbs"]}
    return rows


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_rbac_is_exactly_the_table(rendered, scenario):
    out = rendered[scenario]
    grants = granted(out)
    assert grants == expected(out.values), (
        f"granted but not in rbac-table.yaml: {sorted(grants - expected(out.values))}\n"
        f"in rbac-table.yaml but not granted: {sorted(expected(out.values) - grants)}"
    )
    assert all("*" not in (group, resource, verb) for _, group, resource, verb, _ in grants)
    assert not {resource for _, _, resource, _, _ in grants} & {"configmaps", "pods", "serviceaccounts"}
    # Secrets: read one by name, in a tenant namespace; delete: only the job's own RayJob (uid-preconditioned).
    assert all(
        names and verb == "get" and where != CLUSTER
        for where, _, resource, verb, names in grants
        if resource == "secrets"
    )
    assert {(group, resource) for _, group, resource, verb, _ in grants if verb == "delete"} <= {("ray.io", "rayjobs")}
    assert not {verb for *_, verb, _ in grants} & {"escalate", "bind", "impersonate", "deletecollection"}


def test_namespaced_unless_asked_otherwise(rendered):
    default, cluster_wide = rendered["default"], rendered["autoscaling"]
    assert default.values["operator"]["clusterWide"] is False
    assert {role["metadata"]["namespace"] for role in default.of_kind("Role")} == {"vlmtune-jobs"}
    assert [r["metadata"]["name"] for r in default.of_kind("ClusterRole")] == ["vlmtune-operator-discovery"]
    assert cluster_wide.values["operator"]["clusterWide"] is True and not cluster_wide.of_kind("Role")
    three = rendered["three-tenants-borrowing"]
    assert {r["metadata"]["namespace"] for r in three.of_kind("Role")} == {"team-vision", "team-language", "interns"}


class _RecordingApi:
    """A CustomObjectsApi that records (verb, group, plural) and answers like an empty cluster."""

    def __init__(self, conflict: bool = False):
        self.calls: set[tuple[str, str, str]] = set()
        self.conflict = conflict

    def __getattr__(self, method: str):
        def call(group, version, namespace, plural, *args, **kwargs):
            self.calls.add((VERB_OF_METHOD[method.split("_", 1)[0]], group, plural))
            if method.startswith("create") and self.conflict:
                from kubernetes.client.exceptions import ApiException

                raise ApiException(status=409)
            if method.startswith("get"):
                if plural == "rayjobs" and self.conflict:
                    return {"metadata": {"name": args[0]}}
                from kubernetes.client.exceptions import ApiException

                raise ApiException(status=404)
            return {"items": []} if method.startswith("list") else None

        return call


class _RecordingCore:
    """A CoreV1Api that records Secret reads and answers 404."""

    def __init__(self, calls: set):
        self.calls = calls

    def read_namespaced_secret(self, name, namespace):
        from kubernetes.client.exceptions import ApiException

        self.calls.add(("get", "", "secrets"))
        raise ApiException(status=404)


def test_client_calls_are_the_client_rows():
    pytest.importorskip("kubernetes")
    from vlmtune_operator.client import KubeClient
    from vlmtune_operator.experiment import CHILD_KINDS

    recorded = set()
    for conflict in (False, True):
        api = _RecordingApi(conflict)
        client = KubeClient(api, core_api=_RecordingCore(api.calls))
        client.get_rayjob("ns", "tj-a")
        client.delete_rayjob("ns", "tj-a", "uid")
        client.get_secret("ns", "object-store")
        client.get_job("ns", "a")
        client.find_workload("ns", "uid")
        try:
            client.create_rayjob("ns", {"metadata": {"name": "tj-a"}})
        except RuntimeError:
            pass  # created but not readable back: the get was still made
        for kind in CHILD_KINDS:  # an Experiment creates its child jobs
            try:
                client.create_job("ns", {"kind": kind, "metadata": {"name": "a"}})
            except RuntimeError:
                pass
        recorded |= api.calls
    # Every public method of the facade was exercised.
    public = {name for name, _ in inspect.getmembers(KubeClient, inspect.isfunction) if not name.startswith("_")}
    assert public == {
        "get_rayjob",
        "create_rayjob",
        "delete_rayjob",
        "get_job",
        "create_job",
        "find_workload",
        "get_secret",
    }
    client_rows = {
        (verb, row["group"], row["resource"]) for row in TABLE if row["source"] == "client" for verb in row["verbs"]
    }
    assert recorded == client_rows


def test_owner_references_need_update_on_finalizers():
    from vlmtune_operator.objects import owner_reference

    reference = owner_reference(
        {"apiVersion": "vlmtune.dev/v1alpha1", "kind": "TuningJob", "metadata": {"name": "a", "uid": "u"}}
    )
    assert reference["blockOwnerDeletion"] is True
    rows = {(row["resource"], tuple(row["verbs"])) for row in TABLE if row["source"] == "ownerReference"}
    assert rows == {(f"{plural_of(kind)}/finalizers", ("update",)) for kind in KINDS}


def test_kopf_rows_follow_the_registered_kinds_and_kopfs_selectors():
    kopf = pytest.importorskip("kopf")
    from kopf._cogs.structs import references

    from vlmtune_operator import __main__ as entry
    from vlmtune_operator.handlers import register
    from vlmtune_operator.runtime import RuntimeConfig

    registry = kopf.OperatorRegistry()
    register(registry, lambda: None, RuntimeConfig())
    watched = {
        (h.selector.group, h.selector.plural or h.selector.any_name)
        for h in registry._changing.get_all_handlers() + registry._spawning.get_all_handlers()
    }
    assert watched == {(API_GROUP, plural_of(kind)) for kind in KINDS}
    kopf_rows = {(row["group"], row["resource"]): set(row["verbs"]) for row in TABLE if row["source"] == "kopf"}
    for _, plural in watched:
        assert kopf_rows[API_GROUP, plural] == {"list", "watch", "patch"}
        assert kopf_rows[API_GROUP, f"{plural}/status"] == {"patch"}

    def named(selector) -> tuple[str, str]:
        return selector.group or "", selector.plural or selector.any_name

    assert named(references.EVENTS) == ("", "events") and kopf_rows["", "events"] == {"create"}
    assert named(references.CRDS) == ("apiextensions.k8s.io", "customresourcedefinitions")
    assert named(references.NAMESPACES) == ("", "namespaces")
    assert kopf_rows[named(references.CRDS)] == kopf_rows[named(references.NAMESPACES)] == {"list", "watch"}
    # Standalone: no peering objects, so no kopfpeerings rows.
    assert "standalone=True" in inspect.getsource(entry.main)
    assert not any("peering" in row["resource"] for row in TABLE)
