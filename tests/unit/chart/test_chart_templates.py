"""One test per template (test_template_<name>): what each renders, for the defaults and the ci/ scenarios.
The runtime ConfigMap is loaded with the operator's own loader, and RayJobs the operator builds from it are checked
against the rendered Kueue objects and the admission policy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from chart_engine import CHART, NAMESPACE, RELEASE, SCENARIOS, render

from vlmtune.spec import load_jobs
from vlmtune_operator.render import render_jobs
from vlmtune_operator.runtime import CONFIGMAP_KEY, load_runtime, parse_runtime

JOBS = CHART.parents[1] / "jobs"
FULLNAME = f"{RELEASE}"  # the release is named like the chart, so the full name is the release name
SECURE_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _runtime_of(out, tmp_path: Path):
    """The RuntimeConfig the operator reads: the ConfigMap's key written to the file it mounts, loaded like
    `vlmtune-operator --runtime FILE` does."""
    configmap = out.one("ConfigMap")
    path = tmp_path / CONFIGMAP_KEY
    path.write_text(configmap["data"][CONFIGMAP_KEY], encoding="utf-8")
    runtime = load_runtime(path)
    assert parse_runtime(configmap) == runtime  # the ConfigMap form that `vlmtune render --runtime` accepts
    return runtime


def _job_on(pool: str, namespace: str, gpus: int = 1, output: str = "s3://vlmtune-runs/vlmtune-jobs/smoke"):
    return load_jobs(
        [JOBS / "smoke.yaml"],
        overrides=[
            f"spec.resources.nodePool={pool}",
            f"spec.resources.gpusPerWorker={gpus}",
            f"metadata.namespace={namespace}",
            f"spec.output.uri={output}",
        ],
    )


def test_every_template_has_a_test():
    templates = {p.stem for p in (CHART / "templates").glob("*.yaml")} | {"NOTES"}
    tests = {name.removeprefix("test_template_") for name in globals() if name.startswith("test_template_")}
    assert templates == tests, (
        f"templates without a test: {templates - tests}; tests without a template: {tests - templates}"
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_template_configmap(rendered, scenario, tmp_path):
    out = rendered[scenario]
    values = out.values
    runtime = _runtime_of(out, tmp_path)
    image = values["runtime"]["image"]
    assert runtime.image == f"{image['repository']}:{image['tag'] or '0.1.0'}"
    assert runtime.image_pull_policy == image["pullPolicy"]
    assert runtime.kueue_api_version == "kueue.x-k8s.io/v1beta2"  # the version the chart's Kueue objects use
    for key in (
        "rayVersion",
        "workerMemory",
        "shmSize",
        "ttlSecondsAfterFinished",
        "backoffLimit",
        "activeDeadlineSeconds",
        "readinessDeadlineSeconds",
        "upstreamPollSeconds",
        "statusIntervalSeconds",
    ):
        assert runtime.to_doc().get(key) == values["runtime"].get(key), key  # null (deleted by helm) -> None
    for key in ("serviceAccount", "objectStoreSecret", "defaultNodePool", "defaultQueue"):
        assert runtime.to_doc().get(key) == (values["runtime"][key] or None), key
    assert runtime.head.cpu == values["runtime"]["head"]["cpu"]
    assert list(runtime.node_pools) == [pool["name"] for pool in values["nodePools"]]
    for pool in values["nodePools"]:
        got = runtime.node_pools[pool["name"]]
        assert got.gpu_resource == pool.get("gpuResource", "nvidia.com/gpu")
        assert [t.to_doc() for t in got.tolerations] == pool.get("tolerations", [])
        assert (got.gpu_type, got.cpu, got.memory) == tuple(pool.get(k) or None for k in ("gpuType", "cpu", "memory"))
        provider = _provider(values, pool)
        assert got.autoscaler == provider
        karpenter = provider == "karpenter"
        extra = (
            {"karpenter.sh/nodepool": pool["autoscaling"].get("karpenterNodePool") or pool["name"]} if karpenter else {}
        )
        assert got.node_selector == {**pool.get("nodeSelector", {}), **extra}
    elastic = values["elasticJobs"]
    assert runtime.elastic_jobs.enabled is elastic["enabled"]
    assert runtime.elastic_jobs.idle_timeout_seconds == elastic["idleTimeoutSeconds"]
    assert runtime.elastic_jobs.upscaling_mode == elastic["upscalingMode"]
    assert runtime.elastic_jobs.autoscaler.to_doc() == elastic["autoscaler"]


def _provider(values: dict, pool: dict) -> str:
    return pool.get("autoscaling", {}).get("provider") or values["autoscaling"]["provider"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_runtime_node_pools_match_kueue_flavors(rendered, scenario, tmp_path):
    # A RayJob the operator builds from the chart's runtime config lands on its pool's ResourceFlavor: the worker
    # pods select exactly the flavor's nodeLabels and tolerate its taints, request a covered GPU resource, and are
    # queued to the tenant's LocalQueue.
    out = rendered[scenario]
    runtime = _runtime_of(out, tmp_path)
    tenant = out.values["tenants"][0]
    queue = out.one("LocalQueue", namespace=tenant["namespace"])
    covered = out.of_kind("ClusterQueue")[0]["spec"]["resourceGroups"][0]["coveredResources"]
    for pool in out.values["nodePools"]:
        flavor = out.one("ResourceFlavor", pool["name"])
        rayjob = render_jobs(
            _job_on(pool["name"], tenant["namespace"], output=tenant["outputPrefix"] + "smoke"), runtime
        )[0]
        worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
        assert worker.get("nodeSelector", {}) == flavor["spec"].get("nodeLabels", {})
        assert worker.get("tolerations", []) == flavor["spec"].get("tolerations", [])
        assert set(worker["containers"][0]["resources"]["limits"]) <= set(covered)
        assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == queue["metadata"]["name"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_template_deployment(rendered, scenario):
    out = rendered[scenario]
    deployment = out.one("Deployment", f"{FULLNAME}-operator", NAMESPACE)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # kopf standalone: one at a time
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert SECURE_CONTAINER.items() <= container["securityContext"].items()
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
    port = out.values["operator"]["healthPort"]
    assert f"--liveness=http://0.0.0.0:{port}/healthz" in container["args"]
    assert container["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The runtime config: the mounted ConfigMap key is the file --runtime names.
    assert "--runtime=/etc/vlmtune/runtime.yaml" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "runtime-config")
    volume = next(v for v in pod["volumes"] if v["name"] == "runtime-config")
    assert mount == {"name": "runtime-config", "mountPath": "/etc/vlmtune", "readOnly": True}
    assert volume["configMap"] == {
        "name": out.one("ConfigMap")["metadata"]["name"],
        "items": [{"key": CONFIGMAP_KEY, "path": "runtime.yaml"}],
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # the only writable path
    watched = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--namespace=")]
    if out.values["operator"]["clusterWide"]:
        assert watched == []
    else:
        assert watched == [t["namespace"] for t in out.values["tenants"]]


def test_images_can_be_pinned_by_digest(tmp_path):
    digest = "sha256:" + "a" * 64
    out = render(values={"operator": {"image": {"digest": digest}}, "runtime": {"image": {"digest": digest}}})
    assert out.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == f"vlmtune-operator@{digest}"
    assert _runtime_of(out, tmp_path).image == f"vlmtune@{digest}"


def test_operator_rolls_when_the_runtime_config_changes():
    def checksum(out):
        return out.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/runtime-config"]

    assert checksum(render()) == checksum(render())
    assert checksum(render()) != checksum(render(values={"runtime": {"shmSize": "16Gi"}}))


def test_template_serviceaccount(rendered):
    out = rendered["default"]
    account = out.one("ServiceAccount", FULLNAME, NAMESPACE)
    assert out.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    existing = render(values={"serviceAccount": {"create": False, "name": "platform-operator"}})
    assert not existing.of_kind("ServiceAccount")
    assert existing.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operator"


def test_template_rbac(rendered):
    # Exact rules: test_chart_rbac.py. Here: every binding names a role the chart renders.
    out = rendered["three-tenants-borrowing"]
    roles = {
        (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])
        for r in out.of_kind("Role") + out.of_kind("ClusterRole")
    }
    for binding in out.of_kind("RoleBinding") + out.of_kind("ClusterRoleBinding"):
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], namespace, ref["name"]) in roles
    assert not render(values={"rbac": {"create": False}}).of_kind("ClusterRole")


def test_template_namespaces(rendered):
    out = rendered["three-tenants-borrowing"]
    created = {ns["metadata"]["name"]: ns for ns in out.of_kind("Namespace")}
    assert set(created) == {"team-vision", "team-language"}  # `interns` exists already (createNamespace: false)
    vision = created["team-vision"]["metadata"]
    assert vision["annotations"]["helm.sh/resource-policy"] == "keep"  # uninstall never deletes a team's jobs
    assert vision["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert vision["labels"]["cost-center"] == "4711" and vision["labels"]["vlmtune.dev/tenant"] == "vision"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_template_resourceflavors(rendered, scenario):
    out = rendered[scenario]
    values = out.values
    flavors = {f["metadata"]["name"]: f for f in out.of_kind("ResourceFlavor")}
    assert list(flavors) == [values["queues"]["cpuFlavor"]["name"]] + [p["name"] for p in values["nodePools"]]
    for pool in values["nodePools"]:
        provider = _provider(values, pool)
        flavor = flavors[pool["name"]]
        assert flavor["spec"].get("tolerations", []) == pool.get("tolerations", [])
        annotations = flavor["metadata"].get("annotations", {})
        if provider == "none":
            assert not annotations
        else:
            assert annotations["vlmtune.dev/autoscaler"] == provider
            assert annotations["vlmtune.dev/max-nodes"] == str(pool["autoscaling"]["maxNodes"])
            assert annotations["vlmtune.dev/min-nodes"] == str(pool["autoscaling"]["minNodes"])
        if provider == "karpenter":
            expected = pool["autoscaling"].get("karpenterNodePool") or pool["name"]
            assert flavor["spec"]["nodeLabels"]["karpenter.sh/nodepool"] == expected


def test_template_cohort(rendered):
    cohort = rendered["three-tenants-borrowing"].one("Cohort")
    assert cohort["metadata"]["name"] == "research" and cohort["spec"] == {}
    assert render(values={"queues": {"cohort": {"parentName": "org"}}}).one("Cohort")["spec"] == {"parentName": "org"}
    assert not render(values={"queues": {"create": False}}).of_kind("Cohort")


def test_template_clusterqueues(rendered):
    out = rendered["three-tenants-borrowing"]
    queues = {q["metadata"]["labels"]["vlmtune.dev/tenant"]: q["spec"] for q in out.of_kind("ClusterQueue")}
    assert set(queues) == {"vision", "language", "interns"}
    assert {spec["cohortName"] for spec in queues.values()} == {"research"}
    (group,) = queues["vision"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", "amd.com/gpu", "nvidia.com/gpu"]
    assert [f["name"] for f in group["flavors"]] == ["cpu-general", "a100-80gb", "mi300x"]

    def quota(tenant, flavor, resource):
        (group,) = queues[tenant]["resourceGroups"]
        found = next(f for f in group["flavors"] if f["name"] == flavor)
        return next(r for r in found["resources"] if r["name"] == resource)

    assert quota("vision", "a100-80gb", "nvidia.com/gpu") == {
        "name": "nvidia.com/gpu",
        "nominalQuota": "16",
        "borrowingLimit": "16",
        "lendingLimit": "8",
    }
    assert quota("vision", "a100-80gb", "amd.com/gpu") == {"name": "amd.com/gpu", "nominalQuota": "0"}
    assert quota("language", "mi300x", "amd.com/gpu")["nominalQuota"] == "16"
    assert quota("interns", "a100-80gb", "nvidia.com/gpu") == {
        "name": "nvidia.com/gpu",
        "nominalQuota": "0",
        "borrowingLimit": "8",
    }
    assert quota("vision", "cpu-general", "memory") == {"name": "memory", "nominalQuota": "64Gi"}
    # Preemption: chart defaults, overridden per tenant.
    assert queues["vision"]["preemption"] == {
        "reclaimWithinCohort": "Any",
        "withinClusterQueue": "LowerPriority",
        "borrowWithinCohort": {"policy": "LowerPriority", "maxPriorityThreshold": 100},
    }
    assert queues["language"]["preemption"]["withinClusterQueue"] == "LowerOrNewerEqualPriority"
    assert queues["interns"]["preemption"]["borrowWithinCohort"] == {"policy": "Never"}
    assert queues["interns"]["queueingStrategy"] == "StrictFIFO"
    assert queues["interns"]["namespaceSelector"] == {"matchLabels": {"vlmtune.dev/tenant": "interns"}}
    assert queues["vision"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "team-vision"}}


def test_template_localqueues(rendered):
    out = rendered["three-tenants-borrowing"]
    for tenant in out.values["tenants"]:
        local = out.one("LocalQueue", namespace=tenant["namespace"])
        assert local["metadata"]["name"] == out.values["runtime"]["defaultQueue"] == "tuning"
        assert local["spec"] == {"clusterQueue": f"{FULLNAME}-{tenant['name']}"}
        out.one("ClusterQueue", local["spec"]["clusterQueue"])


def test_template_priorityclasses(rendered):
    classes = {c["metadata"]["name"]: c for c in rendered["default"].of_kind("WorkloadPriorityClass")}
    assert {name: c["value"] for name, c in classes.items()} == {"production": 1000, "experiment": 100}
    replaced = render(values={"queues": {"priorityClasses": [{"name": "urgent", "value": 10}]}})
    assert [c["metadata"]["name"] for c in replaced.of_kind("WorkloadPriorityClass")] == ["urgent"]


def _rules_for_port(policy: dict, port: int) -> list[dict]:
    rules = []
    for rule in policy["spec"]["ingress"]:
        for entry in rule.get("ports", []):
            if entry["port"] <= port <= entry.get("endPort", entry["port"]):
                rules.append(rule)
    return rules


def test_template_networkpolicy(rendered):
    out = rendered["three-tenants-borrowing"]
    operator = out.one("NetworkPolicy", f"{FULLNAME}-operator", NAMESPACE)
    assert operator["spec"]["ingress"] == [] and operator["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {(p["protocol"], p["port"]) for rule in operator["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}  # DNS and the API server only
    assert all("to" not in rule for rule in operator["spec"]["egress"])
    assert (
        operator["spec"]["podSelector"]["matchLabels"].items()
        <= out.one("Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    for tenant in out.values["tenants"]:
        head = out.one("NetworkPolicy", f"{FULLNAME}-ray-head", tenant["namespace"])
        assert head["spec"]["podSelector"] == {
            "matchLabels": {"ray.io/node-type": "head"},
            "matchExpressions": [{"key": "vlmtune.dev/job", "operator": "Exists"}],
        }
        (dashboard,) = _rules_for_port(head, 8265)  # one rule, and not the Ray-pods rule
        peers = dashboard["from"]
        assert {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "kuberay-operator"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}},
        } in peers
        assert out.values["networkPolicy"]["dashboardFrom"][0] in peers
        assert all(peer for peer in peers) and {} not in [p.get("podSelector") for p in peers]
        (gcs,) = _rules_for_port(head, 6379)
        assert gcs["from"] == [{"podSelector": {"matchLabels": {"ray.io/is-ray-node": "yes"}}}]
        metrics = _rules_for_port(head, 8080)
        assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in metrics[-1][
            "from"
        ]
    assert not render(values={"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy")


def test_operator_reads_runs_only_with_each_tenants_own_secret(rendered):
    # No credential of the operator's own: it reads a tenant's runs with the Secret in that tenant's namespace.
    for scenario, out in rendered.items():
        container = out.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert "envFrom" not in container, scenario
    out = rendered["three-tenants-borrowing"]
    secrets = {
        (role["metadata"]["namespace"], tuple(rule["resourceNames"]))
        for role in out.of_kind("Role")
        for rule in role["rules"]
        if rule["resources"] == ["secrets"]
    }
    assert secrets == {
        ("team-vision", ("object-store",)),
        ("team-language", ("language-store",)),
        ("interns", ("object-store",)),
    }
    runtime = parse_runtime(out.one("ConfigMap"))
    assert runtime.tenants["team-language"].object_store_secret == "language-store"
    assert not [role for role in render().of_kind("Role") if role["metadata"]["name"].endswith("-secrets")]
    minio = render(values={"networkPolicy": {"objectStorePorts": [9000]}})
    operator = minio.one("NetworkPolicy", f"{FULLNAME}-operator", NAMESPACE)
    assert {"ports": [{"protocol": "TCP", "port": 9000}]} in operator["spec"]["egress"]  # MinIO


def _cel_verdicts(policy: dict, obj: dict) -> dict[str, bool]:
    """Each validation's verdict on `obj`, with the policy's variables bound as the API server binds them."""
    import celpy

    env = celpy.Environment()
    activation = {"object": celpy.json_to_cel(obj)}
    variables = {
        celpy.celtypes.StringType(v["name"]): env.program(env.compile(v["expression"])).evaluate(activation)
        for v in policy["spec"].get("variables", [])
    }
    activation["variables"] = celpy.celtypes.MapType(variables)
    return {
        rule["message"]: bool(env.program(env.compile(rule["expression"])).evaluate(activation))
        for rule in policy["spec"]["validations"]
    }


def test_each_tenant_writes_only_under_its_own_prefix(rendered):
    pytest.importorskip("celpy")
    out = rendered["three-tenants-borrowing"]
    policies = {
        binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"][0]: out.one(
            "ValidatingAdmissionPolicy", binding["spec"]["policyName"]
        )
        for binding in out.of_kind("ValidatingAdmissionPolicyBinding")
        if binding["spec"]["policyName"].startswith(f"{FULLNAME}-storage-")
    }
    assert set(policies) == {"team-vision", "team-language", "interns"}
    for policy in policies.values():
        rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
        assert rule["apiGroups"] == ["vlmtune.dev"] and set(rule["resources"]) == {
            "tuningjobs",
            "evaljobs",
            "experiments",
        }

    def allowed(namespace: str, uri: str) -> bool:
        return all(_cel_verdicts(policies[namespace], {"spec": {"output": {"uri": uri}}}).values())

    assert allowed("team-vision", "s3://research-runs/team-vision/stage1")
    assert allowed("team-vision", "s3://research-runs/team-vision/")
    assert not allowed("team-language", "s3://research-runs/team-vision/stage1")  # another tenant's figures
    assert not allowed("team-vision", "s3://research-runs/team-visionary/x")  # a longer name is not inside
    assert not allowed("team-vision", "./runs/stage1")  # a local path


def test_template_admissionpolicy(rendered, tmp_path):
    pytest.importorskip("celpy")
    out = rendered["default"]
    policy = out.one("ValidatingAdmissionPolicy", f"{FULLNAME}-rayjobs")
    cluster_policy = out.one("ValidatingAdmissionPolicy", f"{FULLNAME}-rayclusters")
    binding = out.one("ValidatingAdmissionPolicyBinding", f"{FULLNAME}-rayjobs")
    assert binding["spec"]["validationActions"] == ["Deny"] and binding["spec"]["policyName"] == f"{FULLNAME}-rayjobs"
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["vlmtune-jobs"]
    # The RayJobs the operator builds pass; a NodePort or LoadBalancer head, or an Ingress, is refused.
    rayjob = render_jobs(_job_on("gpu", "vlmtune-jobs"), _runtime_of(out, tmp_path))[0]
    assert all(_cel_verdicts(policy, rayjob).values())
    assert all(_cel_verdicts(cluster_policy, {"spec": rayjob["spec"]["rayClusterSpec"]}).values())
    for change, field in (
        (("serviceType",), "NodePort"),
        (("headService",), {"spec": {"type": "LoadBalancer"}}),
        (("enableIngress",), True),
    ):
        broken = copy.deepcopy(rayjob)
        broken["spec"]["rayClusterSpec"]["headGroupSpec"][change[0]] = field
        verdicts = _cel_verdicts(policy, broken)
        assert [message for message, ok in verdicts.items() if not ok] == [
            next(m for m in verdicts if f"headGroupSpec.{change[0]}" in m)
        ]
        assert not all(_cel_verdicts(cluster_policy, {"spec": broken["spec"]["rayClusterSpec"]}).values())
    # The operator turns token auth on; a RayJob that turns it off is refused when the policy requires it.
    strict = render(values={"admissionPolicy": {"requireTokenAuth": True}})
    assert all(_cel_verdicts(strict.one("ValidatingAdmissionPolicy", f"{FULLNAME}-rayjobs"), rayjob).values())
    without = copy.deepcopy(rayjob)
    without["spec"]["rayClusterSpec"]["authOptions"] = {"mode": "disabled"}
    verdicts = _cel_verdicts(strict.one("ValidatingAdmissionPolicy", f"{FULLNAME}-rayjobs"), without)
    assert verdicts["spec.rayClusterSpec.authOptions.mode: Ray clusters must use token auth"] is False
    with_token = copy.deepcopy(rayjob)
    with_token["spec"]["rayClusterSpec"]["authOptions"] = {"mode": "token"}
    assert all(_cel_verdicts(strict.one("ValidatingAdmissionPolicy", f"{FULLNAME}-rayjobs"), with_token).values())
    assert not render(values={"admissionPolicy": {"enabled": False}}).of_kind("ValidatingAdmissionPolicy")


def test_template_NOTES(rendered):
    notes = rendered["three-tenants-borrowing"].notes
    assert "vision: namespace team-vision, LocalQueue tuning -> ClusterQueue vlmtune-vision" in notes
    assert "kubectl apply -n team-vision -f jobs/stage1.yaml" in notes and "kubectl get tuningjobs" in notes
    # cluster-autoscaler pools: the node group's bounds, labels and taints, and how to scale from zero.
    assert "a100-80gb (cluster-autoscaler): 0..4 nodes x 8 nvidia.com/gpu" in notes
    assert "node labels: cloud.google.com/gke-accelerator=nvidia-a100-80gb" in notes
    assert "node taints: amd.com/gpu:NoSchedule" in notes
    assert ".../resources/amd.com/gpu=8" in notes
    assert "Priority classes (label kueue.x-k8s.io/priority-class): production, experiment" in notes
    assert "kuberayOperator.namespace is empty" in rendered["default"].notes
    assert "Autoscaled node pools" not in rendered["default"].notes
    karpenter = rendered["autoscaling"].notes
    assert "h100 (karpenter): 0..8 nodes x 8 nvidia.com/gpu" in karpenter
    assert "Karpenter NodePool gpu-h100 (rendered by this chart)" in karpenter
    assert "Elastic jobs are on" in karpenter and "ElasticJobsViaWorkloadSlices" in karpenter
    assert "jobs with spec.resources.elastic fail with reason ElasticJobsDisabled" in notes
    equal = render(
        values={
            "nodePools": [
                {
                    "name": "gpu",
                    "gpusPerNode": 8,
                    "autoscaling": {"provider": "cluster-autoscaler", "minNodes": 1, "maxNodes": 2},
                    "tolerations": [
                        {"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoExecute"},
                        {"operator": "Exists"},
                    ],
                }
            ]
        }
    ).notes
    assert "node taints: gpu=a100:NoExecute\n" in equal and "Scale from zero" not in equal  # min 1: a node exists


def test_template_karpenternodepools(rendered):
    out = rendered["autoscaling"]
    h100, l4 = out.of_kind("NodePool")
    karpenter = out.values["autoscaling"]["karpenter"]
    assert h100["metadata"]["name"] == "gpu-h100" and l4["metadata"]["name"] == "l4"
    # The ResourceFlavor (and so every worker pod) selects exactly the nodes each NodePool launches.
    for nodepool, pool in zip((h100, l4), out.values["nodePools"]):
        flavor = out.one("ResourceFlavor", pool["name"])
        assert flavor["spec"]["nodeLabels"]["karpenter.sh/nodepool"] == nodepool["metadata"]["name"]
        spec = nodepool["spec"]["template"]["spec"]
        pinned = {r["key"]: r["values"] for r in spec["requirements"]}
        for key, value in flavor["spec"]["nodeLabels"].items():
            assert key == "karpenter.sh/nodepool" or pinned[key] == [value]
        assert pinned["node.kubernetes.io/instance-type"] == pool["autoscaling"]["instanceTypes"]
        # The pool's tolerations are exactly what its nodes are tainted with.
        assert spec["taints"] == [{"key": t["key"], "effect": t["effect"]} for t in pool["tolerations"]]
        assert spec["nodeClassRef"] == karpenter["nodeClassRef"]
        assert spec["expireAfter"] == "Never"
        limit = pool["autoscaling"]["maxNodes"] * pool["gpusPerNode"]
        assert nodepool["spec"]["limits"] == {"nvidia.com/gpu": str(limit)}
        assert nodepool["spec"]["disruption"] == {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": "10m",
            "budgets": [{"nodes": "10%"}],
        }
    assert {r["key"]: r["values"] for r in h100["spec"]["template"]["spec"]["requirements"]}[
        "karpenter.sh/capacity-type"
    ] == ["on-demand"]
    assert {r["key"]: r["values"] for r in l4["spec"]["template"]["spec"]["requirements"]}[
        "karpenter.sh/capacity-type"
    ] == ["spot", "on-demand"]
    assert h100["spec"]["weight"] == 50 and "weight" not in l4["spec"]
    # Only karpenter pools get one, and only while the chart creates them.
    assert not rendered["three-tenants-borrowing"].of_kind("NodePool") and not rendered["default"].of_kind("NodePool")
    mine = render("autoscaling", values={"autoscaling": {"karpenter": {"createNodePools": False}}})
    assert not mine.of_kind("NodePool")
    assert "Karpenter NodePool gpu-h100 (yours: give it these requirements and taints)" in mine.notes
    mixed = render(
        "autoscaling",
        values={
            "nodePools": [
                out.values["nodePools"][0],
                {"name": "l4", "gpusPerNode": 1, "autoscaling": {"provider": "none"}},
            ]
        },
    )
    assert [n["metadata"]["name"] for n in mixed.of_kind("NodePool")] == ["gpu-h100"]
    assert "karpenter.sh/nodepool" not in mixed.one("ResourceFlavor", "l4")["spec"].get("nodeLabels", {})


def test_values_examples_in_ci_are_yaml():
    for path in filter(None, SCENARIOS.values()):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_policies_cover_every_namespace_the_operator_runs_jobs_in(rendered, scenario):
    # Even cluster-wide (the `autoscaling` scenario), the operator creates RayJobs only in tenant namespaces (it
    # refuses jobs elsewhere), and those are exactly where the policies bind and the LocalQueues exist.
    out = rendered[scenario]
    tenants = set(parse_runtime(out.one("ConfigMap")).tenants)
    bound = {
        namespace
        for binding in out.of_kind("ValidatingAdmissionPolicyBinding")
        for namespace in binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"]
    }
    queues = {queue["metadata"]["namespace"] for queue in out.of_kind("LocalQueue")}
    assert tenants == bound == queues == {t["namespace"] for t in out.values["tenants"]}
