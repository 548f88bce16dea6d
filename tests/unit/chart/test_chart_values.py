"""values.yaml is fully documented and typed; values.schema.json and the chart's own checks reject bad values with
messages that name the value path, both through Helm (as `helm template --set` reports them) and through
jsonschema directly; and every field of the operator's RuntimeConfig can be set from values."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from chart_engine import CHART, merge, render, user_values

from vlmtune_operator.runtime import AutoscalerResources, ElasticJobs, NodePool, RuntimeConfig, Toleration

VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")
DEFAULTS = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
OPEN_OBJECTS = {"global", "affinity", "kuberay-operator", "kueue"}
"""Objects whose keys belong to someone else (Helm, core/v1 Affinity, the dependency charts)."""


def _tenant(name: str, namespace: str) -> dict:
    """A tenant entry with the keys the schema requires."""
    return {"name": name, "namespace": namespace, "outputPrefix": f"s3://runs/{name}{namespace}/"}


# (values given, path of the error as Helm prints it, words Helm's message contains)
BAD_VALUES = {
    "port-not-a-number": ({"operator": {"healthPort": "http"}}, "/operator/healthPort", "got string, want integer"),
    "unknown-autoscaler": (
        {"autoscaling": {"provider": "gke"}},
        "/autoscaling/provider",
        "value must be one of 'none', 'cluster-autoscaler', 'karpenter'",
    ),
    "typo-or-unsupported-key": (
        {"operator": {"replicas": 2}},
        "/operator",
        "additional properties 'replicas' not allowed",
    ),
    "credentials-in-values": (
        {"runtime": {"awsSecretAccessKey": "abc"}},
        "/runtime",
        "additional properties 'awsSecretAccessKey' not allowed",
    ),
    "secret-value-not-a-name": (
        {"runtime": {"objectStoreSecret": "AKIA1234:s3cr3t"}},
        "/runtime/objectStoreSecret",
        "does not match pattern",
    ),
    "root-user": ({"operator": {"runAsUser": 0}}, "/operator/runAsUser", "minimum: got 0, want 1"),
    "negative-ttl": ({"runtime": {"ttlSecondsAfterFinished": -1}}, "/runtime/ttlSecondsAfterFinished", "minimum"),
    "never-reclaim-but-borrow-preempts": (
        {"queues": {"preemption": {"reclaimWithinCohort": "Never"}}},
        "/queues/preemption/borrowWithinCohort/policy",
        "value must be 'Never'",
    ),
    "tenant-name-not-dns": (
        {"tenants": [{"name": "Team_A", "namespace": "team-a", "outputPrefix": "s3://r/a/"}]},
        "/tenants/0/name",
        "does not match pattern",
    ),
    "tenant-without-storage": (
        {"tenants": [{"name": "a", "namespace": "team-a"}]},
        "/tenants/0",
        "missing property 'outputPrefix'",
    ),
    "tenant-storage-on-local-disk": (
        {"tenants": [{"name": "a", "namespace": "a", "outputPrefix": "/mnt/runs"}]},
        "/tenants/0/outputPrefix",
        "does not match pattern",
    ),
    "toleration-operator": (
        {"nodePools": [{"name": "gpu", "tolerations": [{"key": "a", "operator": "Maybe"}]}]},
        "/nodePools/0/tolerations/0/operator",
        "value must be one of 'Exists', 'Equal'",
    ),
    "quota-not-a-quantity": (
        {"tenants": [{**_tenant("a", "a"), "quotas": {"gpu": {"gpus": {"nominal": "eight"}}}}]},
        "/tenants/0/quotas/gpu/gpus/nominal",
        "does not match pattern",
    ),
    "tag-inside-repository": (
        {"runtime": {"image": {"repository": "vlmtune:latest"}}},
        "/runtime/image/repository",
        "does not match pattern",
    ),
    "pool-autoscaler-typo": (
        {"nodePools": [{"name": "gpu", "autoscaling": {"provider": "karpenter-v1"}}]},
        "/nodePools/0/autoscaling/provider",
        "value must be one of",
    ),
    "capacity-type-typo": (
        {"autoscaling": {"karpenter": {"capacityTypes": ["ondemand"]}}},
        "/autoscaling/karpenter/capacityTypes/0",
        "value must be one of 'on-demand', 'spot'",
    ),
    "v1beta1-consolidation": (
        {"autoscaling": {"karpenter": {"disruption": {"consolidationPolicy": "WhenUnderutilized"}}}},
        "/autoscaling/karpenter/disruption/consolidationPolicy",
        "value must be one of",
    ),
    "duration-in-days": (
        {"autoscaling": {"karpenter": {"expireAfter": "30d"}}},
        "/autoscaling/karpenter/expireAfter",
        "does not match pattern",
    ),
    "nodeclass-group-with-version": (
        {"autoscaling": {"karpenter": {"nodeClassRef": {"group": "karpenter.k8s.aws/v1"}}}},
        "/autoscaling/karpenter/nodeClassRef/group",
        "does not match pattern",
    ),
    "pool-weight-out-of-range": (
        {"nodePools": [{"name": "gpu", "autoscaling": {"weight": 0}}]},
        "/nodePools/0/autoscaling/weight",
        "minimum: got 0, want 1",
    ),
    "elastic-upscaling-typo": (
        {"elasticJobs": {"upscalingMode": "Fast"}},
        "/elasticJobs/upscalingMode",
        "value must be one of 'Default', 'Aggressive', 'Conservative'",
    ),
    "elastic-idle-negative": (
        {"elasticJobs": {"idleTimeoutSeconds": -5}},
        "/elasticJobs/idleTimeoutSeconds",
        "minimum",
    ),
    "elastic-not-a-bool": ({"elasticJobs": {"enabled": "yes"}}, "/elasticJobs/enabled", "got string, want boolean"),
    "removed-elastic-bounds": (
        {"elasticJobs": {"maxWorkers": 8}},
        "/elasticJobs",
        "additional properties 'maxWorkers' not allowed",
    ),
}

# Checks the schema cannot express: the templates `fail` with the value path and the fix.
BAD_COMBINATIONS = {
    "karpenter-without-nodeclass": (
        {"autoscaling": {"provider": "karpenter"}},
        'autoscaling.karpenter.nodeClassRef.name: node pool "gpu" uses karpenter; name the existing EC2NodeClass',
    ),
    "karpenter-min-nodes": (
        merge(
            {"autoscaling": {"provider": "karpenter", "karpenter": {"nodeClassRef": {"name": "gpu"}}}},
            {"nodePools": [{"name": "gpu", "gpusPerNode": 8, "autoscaling": {"minNodes": 1, "maxNodes": 4}}]},
        ),
        "nodePools[0].autoscaling.minNodes: 1, but a Karpenter NodePool keeps no minimum",
    ),
    "karpenter-without-max": (
        merge(
            {"autoscaling": {"provider": "karpenter", "karpenter": {"nodeClassRef": {"name": "gpu"}}}},
            {"nodePools": [{"name": "gpu", "gpusPerNode": 8, "autoscaling": {"minNodes": 0}}]},
        ),
        "nodePools[0].autoscaling.maxNodes: required for a Karpenter pool",
    ),
    "karpenter-without-gpus-per-node": (
        merge(
            {"autoscaling": {"provider": "karpenter", "karpenter": {"nodeClassRef": {"name": "gpu"}}}},
            {"nodePools": [{"name": "gpu", "autoscaling": {"maxNodes": 2}}]},
        ),
        "nodePools[0].gpusPerNode: required (at least 1) for a Karpenter pool",
    ),
    "karpenter-selector-by-hand": (
        merge(
            {"autoscaling": {"provider": "karpenter", "karpenter": {"nodeClassRef": {"name": "gpu"}}}},
            {
                "nodePools": [
                    {
                        "name": "gpu",
                        "gpusPerNode": 8,
                        "nodeSelector": {"karpenter.sh/nodepool": "x"},
                        "autoscaling": {"maxNodes": 2},
                    }
                ]
            },
        ),
        "nodePools[0].nodeSelector: leave out karpenter.sh/nodepool",
    ),
    "instance-types-without-karpenter": (
        {"nodePools": [{"name": "gpu", "autoscaling": {"instanceTypes": ["p5.48xlarge"]}}]},
        "nodePools[0].autoscaling.instanceTypes: only pools that Karpenter provides",
    ),
    "pool-provider-overrides-default": (
        {
            "autoscaling": {"provider": "karpenter"},
            "nodePools": [{"name": "gpu", "autoscaling": {"provider": "cluster-autoscaler", "weight": 10}}],
        },
        "nodePools[0].autoscaling.weight: only pools that Karpenter provides take it (this pool's provider is "
        "cluster-autoscaler)",
    ),
    "unknown-flavor": (
        {"tenants": [{**_tenant("a", "a"), "quotas": {"a100": {"gpus": {"nominal": 1}}}}]},
        "tenants[0].quotas.a100: no flavor of that name (known: cpu, gpu)",
    ),
    "gpus-on-cpu-flavor": (
        {"tenants": [{**_tenant("a", "a"), "quotas": {"cpu": {"gpus": {"nominal": 1}}}}]},
        "tenants[0].quotas.cpu.gpus: the CPU flavor has no accelerators",
    ),
    "shared-namespace": (
        {"tenants": [_tenant("a", "x"), _tenant("b", "x")]},
        'tenants[1].namespace: "x" belongs to another tenant',
    ),
    "duplicate-tenant": (
        {"tenants": [_tenant("a", "x"), _tenant("a", "y")]},
        'tenants[1].name: "a" is used by another tenant',
    ),
    "gpus-beyond-pool": (
        {"tenants": [{**_tenant("a", "a"), "quotas": {"gpu": {"gpus": {"nominal": 33}}}}]},
        "the tenants are promised 33 GPUs but node pool gpu holds at most 32 (maxNodes 4 x gpusPerNode 8)",
    ),
    "lending-beyond-nominal": (
        {"tenants": [{**_tenant("a", "a"), "quotas": {"gpu": {"gpus": {"nominal": 2, "lendingLimit": 4}}}}]},
        "tenants[0].quotas.gpu.gpus.lendingLimit: 4 is more than the nominal quota 2",
    ),
    "unknown-default-pool": (
        {"runtime": {"defaultNodePool": "tpu"}},
        'runtime.defaultNodePool: "tpu" is not a node pool',
    ),
    "flavor-name-clash": (
        {"queues": {"cpuFlavor": {"name": "gpu"}}},
        'nodePools[0].name: "gpu" is also queues.cpuFlavor.name',
    ),
    "nothing-to-watch": ({"tenants": []}, "tenants: add at least one tenant"),
    "auth-off-but-required": (
        {"runtime": {"rayAuthMode": "disabled"}},
        "runtime.rayAuthMode: disabled, but admissionPolicy.requireTokenAuth denies every",
    ),
    "tenant-queue-not-the-default": (
        {"tenants": [{"name": "a", "namespace": "a", "outputPrefix": "s3://runs/a/", "localQueueName": "vision-q"}]},
        'tenants[0].localQueueName: "vision-q" differs from runtime.defaultQueue',
    ),
    "nested-output-prefixes": (
        {
            "tenants": [
                {"name": "a", "namespace": "a", "outputPrefix": "s3://runs/team/"},
                {"name": "b", "namespace": "b", "outputPrefix": "s3://runs/team/b"},
            ]
        },
        'tenants[1].outputPrefix: "s3://runs/team/b" lies inside tenants[0].outputPrefix',
    ),
    "same-output-prefix": (
        {
            "tenants": [
                {"name": "a", "namespace": "a", "outputPrefix": "s3://runs/"},
                {"name": "b", "namespace": "b", "outputPrefix": "s3://runs"},
            ]
        },
        'tenants[0].outputPrefix: "s3://runs/" lies inside tenants[1].outputPrefix',
    ),
    "min-above-max": (
        {"nodePools": [{"name": "gpu", "autoscaling": {"minNodes": 3, "maxNodes": 1}}]},
        "nodePools[0].autoscaling.minNodes: 3 is more than maxNodes 1",
    ),
}


def _documented_keys(text: str) -> list[tuple[int, str, bool, bool]]:
    """(line, key, documented, is a leaf) for every mapping key outside list items; a key is documented by a
    `# --` comment above it or above one of its parents (a documented map is one value, as in helm-docs)."""
    lines, found, list_indent, parents = text.splitlines(), [], None, []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped or stripped.startswith("#"):
            continue
        if list_indent is not None and indent > list_indent:
            continue  # inside a list item: data, documented by the list's own comment
        list_indent = None
        if stripped.startswith("- "):
            list_indent = indent
            continue
        match = re.match(r"([\w.\-/]+):(.*)$", stripped)
        assert match, f"values.yaml:{number + 1}: cannot read {line!r}"
        comments = []
        for previous in reversed(lines[:number]):
            if not previous.lstrip().startswith("#"):
                break
            comments.append(previous.strip())
        following = next((nxt for nxt in lines[number + 1 :] if nxt.strip() and not nxt.lstrip().startswith("#")), "")
        has_map_children = (
            len(following) - len(following.lstrip()) > indent
            and not following.lstrip().startswith("- ")
            and not match.group(2).strip()
        )
        while parents and parents[-1][0] >= indent:
            parents.pop()
        documented = any(c.startswith("# --") for c in comments) or any(doc for _, doc in parents)
        parents.append((indent, documented))
        found.append((number + 1, match.group(1), documented, not has_map_children))
    return found


def test_every_value_has_a_doc_comment():
    undocumented = [
        f"values.yaml:{line}: {key}"
        for line, key, documented, leaf in _documented_keys(VALUES_TEXT)
        if leaf and not documented
    ]
    assert not undocumented, "values without a `# --` comment:\n" + "\n".join(undocumented)


def test_the_doc_comment_check_bites():
    text = "a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 1\nf:\n  - g: 1\n"
    assert [(key, documented) for _, key, documented, leaf in _documented_keys(text) if leaf] == [
        ("b", True),
        ("c", False),
        ("e", True),
        ("f", False),
    ]


def test_keys_are_camel_case():
    keys = [key for _, key, _, _ in _documented_keys(VALUES_TEXT)]
    # Label keys are data; `kuberay-operator` is the dependency chart's name.
    odd = [
        k
        for k in keys
        if not re.fullmatch(r"[a-z][A-Za-z0-9]*", k)
        and "/" not in k
        and "." not in k
        and k not in {"kuberay-operator", "ephemeral-storage"}
    ]
    assert not odd, odd


def test_the_schema_is_draft_07_and_closed():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and path.rsplit(".", 1)[-1] not in OPEN_OBJECTS:
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, sub in node.items():
                yield from walk(
                    sub, f"{path}.{key}" if key not in ("properties", "items", "additionalProperties") else path
                )
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, path)
        yield path

    list(walk(SCHEMA, "values"))
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


@pytest.mark.parametrize("case", BAD_VALUES)
def test_helm_rejects_bad_values_naming_the_path(case, helm_engine):
    given, path, words = BAD_VALUES[case]
    with pytest.raises(helm_engine.HelmValuesError) as caught:
        render(values=given)
    message = str(caught.value)
    assert f"at '{path}'" in message and words in message, message


@pytest.mark.parametrize("case", BAD_VALUES)
def test_jsonschema_rejects_bad_values_naming_the_path(case):
    given, path, _ = BAD_VALUES[case]
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merge(DEFAULTS, given)))
    paths = {"/" + "/".join(map(str, e.absolute_path)) for e in errors}
    paths |= {"/" + "/".join(map(str, c.absolute_path)) for e in errors for c in e.context or []}
    assert path in paths, [(e.json_path, e.message) for e in errors]


def test_a_bad_set_is_rejected_by_helms_own_parser_and_schema(helm_engine):
    # Exactly what `helm template charts/vlmtune --set operator.healthPort=http,autoscaling.provider=gke` reports.
    with pytest.raises(helm_engine.HelmValuesError) as caught:
        render(sets=("operator.healthPort=http,autoscaling.provider=gke",))
    assert "at '/operator/healthPort': got string, want integer" in str(caught.value)
    assert "at '/autoscaling/provider': value must be one of" in str(caught.value)
    assert user_values(sets=("operator.healthPort=9090",))["operator"]["healthPort"] == 9090  # typed like helm


@pytest.mark.parametrize("case", BAD_COMBINATIONS)
def test_templates_fail_with_the_value_path(case, helm_engine):
    given, words = BAD_COMBINATIONS[case]
    with pytest.raises(helm_engine.HelmRenderError) as caught:
        render(values=given)
    assert words in str(caught.value), str(caught.value)


def _aliases(model) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_runtime_config_field_is_a_value():
    # The chart is the only way to set the operator's runtime config on a cluster: nothing may be unreachable.
    runtime = SCHEMA["properties"]["runtime"]["properties"]
    from_image = {"image", "imagePullPolicy"}  # runtime.image.{repository,tag,pullPolicy}
    # nodePools[] / the Kueue API version the chart renders / the top-level elasticJobs value
    chart_owned = {"nodePools", "kueueApiVersion", "elasticJobs", "tenants"}  # tenants: the top-level value
    assert _aliases(RuntimeConfig) == (set(runtime) - {"image"}) | from_image | chart_owned
    pool = SCHEMA["properties"]["nodePools"]["items"]["properties"]
    assert _aliases(NodePool) <= set(pool) | {"autoscaler"}  # autoscaler: nodePools[].autoscaling.provider
    elastic = SCHEMA["properties"]["elasticJobs"]["properties"]
    assert _aliases(ElasticJobs) == set(elastic)
    assert _aliases(AutoscalerResources) == set(elastic["autoscaler"]["properties"])
    assert _aliases(Toleration) == set(pool["tolerations"]["items"]["properties"])
