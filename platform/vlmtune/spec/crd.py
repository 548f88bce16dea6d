"""CustomResourceDefinitions generated from the spec models, so the cluster schema can never drift from them.

Pydantic writes JSON Schema (2020-12, `$ref`s, `anyOf` with null, `const`); Kubernetes wants a *structural*
OpenAPI v3 schema: every node typed, no references, no `additionalProperties: false` (the API server prunes
and `kubectl` rejects unknown fields instead). `structural_schema` does that translation.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from vlmtune.spec.base import API_GROUP, API_VERSION
from vlmtune.spec.cel import IMMUTABLE_MESSAGE, MUTABLE_SPEC_FIELDS, NAME_RULE, RULES
from vlmtune.spec.loading import KINDS
from vlmtune.spec.metadata import PRIORITY_LABEL
from vlmtune.spec.status import STATUS_MODELS, JobStatus

VERSION = API_VERSION.split("/", 1)[1]
CATEGORY = "vlmtune"
SHORT_NAMES = {"TuningJob": ["tj"]}
"""Explicit short names; other kinds get their initials (EvalJob -> ej) when that makes two letters or more."""
HEADER = "# Generated from the vlmtune.spec models by `vlmtune crds --write charts/vlmtune/crds`. Do not edit.\n"

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Lifecycle phase."},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.reason",
        "description": "Why the job is in its phase (WaitingForQuota, Preempted, WaitingForUpstream...).",
    },
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage", "description": "Step inside the phase."},
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progress",
        "description": "Steps done/planned (an Experiment: jobs succeeded/all).",
    },
    {"name": "Queue", "type": "string", "jsonPath": ".status.queue", "description": "Kueue LocalQueue."},
    {
        "name": "Priority",
        "type": "string",
        "jsonPath": ".metadata.labels." + PRIORITY_LABEL.replace(".", "\\."),
        "priority": 1,
        "description": "Kueue WorkloadPriorityClass.",
    },
    {
        "name": "RayJob",
        "type": "string",
        "jsonPath": ".status.rayJobName",
        "priority": 1,
        "description": "Child KubeRay RayJob.",
    },
    {
        "name": "Deadline",
        "type": "date",
        "jsonPath": ".status.deadline",
        "priority": 1,
        "description": "When the operator fails the job unless its state changes.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# JSON Schema formats the API server understands; pydantic's others (uri, path, ...) only add noise.
_KEPT_FORMATS = {"date-time", "date", "int32", "int64", "float", "double", "byte"}
_DROPPED_KEYS = {"title", "$defs", "discriminator", "examples"}


def generate_crds() -> list[dict]:
    """One CRD per job kind in `KINDS`, in `KINDS` order."""
    return [crd_for(kind, model) for kind, model in KINDS.items()]


def crd_for(kind: str, model: type[BaseModel]) -> dict:
    """The apiextensions.k8s.io/v1 CRD of one job kind (namespaced, one served+storage version)."""
    plural = plural_of(kind)
    names = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "categories": [CATEGORY],
    }
    short = short_names(kind)
    if short:
        names["shortNames"] = short
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": resource_schema(model, STATUS_MODELS.get(kind, JobStatus))},
        "subresources": {"status": {}},
        "additionalPrinterColumns": PRINTER_COLUMNS,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {"group": API_GROUP, "names": names, "scope": "Namespaced", "versions": [version]},
    }


def resource_schema(model: type[BaseModel], status: type[BaseModel]) -> dict:
    """Root schema of a custom resource: the model's `spec`, the status model, and plain type meta.

    apiVersion, kind and metadata stay untyped beyond `string`/`object`: the API server owns them and
    forbids defaults or constraints there.
    """
    own = structural_schema(model)
    return {
        "type": "object",
        "description": own.get("description", ""),
        "properties": {
            "apiVersion": {"type": "string", "description": f"Always {API_VERSION}."},
            "kind": {"type": "string", "description": f"Always {model.__name__}."},
            "metadata": {"type": "object"},
            "spec": immutable(own["properties"]["spec"]),
            "status": structural_schema(status),
        },
        "required": ["spec"],
        "x-kubernetes-validations": [NAME_RULE],
    }


def immutable(spec: dict) -> dict:
    """`spec` with `self == oldSelf` on every field but `suspend`: a running training job is never changed under
    its RayJob (as Kubeflow's TrainJob does). Every field is required or defaulted, so none can appear later."""
    properties = {}
    for name, node in spec["properties"].items():
        if name not in MUTABLE_SPEC_FIELDS:
            rule = {"rule": "self == oldSelf", "message": f"spec.{name} {IMMUTABLE_MESSAGE}"}
            node = dict(node, **{"x-kubernetes-validations": [*node.get("x-kubernetes-validations", []), rule]})
        properties[name] = node
    return dict(spec, properties=properties)


def structural_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema as a Kubernetes structural OpenAPI v3 schema."""
    schema = model.model_json_schema(by_alias=True, schema_generator=_EnumDocsSchema)
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict, defs: dict) -> dict:
    node = dict(node)
    if "$ref" in node or ("allOf" in node and len(node["allOf"]) == 1):
        target = node.pop("$ref", None) or node.pop("allOf")[0]["$ref"]
        name = target.rsplit("/", 1)[1]
        converted = _convert(defs[name], defs)
        if name in RULES:
            converted["x-kubernetes-validations"] = RULES[name]
        return _merge(converted, _convert_keys(node, defs))
    if "anyOf" in node:
        return _convert_any_of(node, defs)
    out = _convert_keys(node, defs)
    if "type" not in out:
        out["type"] = _infer_type(out)
    return out


def _convert_keys(node: dict, defs: dict) -> dict:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas forbid it; the API server prunes unknown fields instead
        if key == "const":
            out["enum"] = [value]
        elif key == "format":
            if value in _KEPT_FORMATS:
                out["format"] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True  # OpenAPI v3.0 spells exclusivity as a flag beside the bound
        elif key == "properties":
            out[key] = {
                name: _default_section(_convert(sub, defs), name in node.get("required", ()))
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    return out


def _default_section(node: dict, required: bool) -> dict:
    """An optional, non-nullable section (a `default_factory` model) defaults to `{}`: the API server then fills in
    its own defaults, so CEL rules and readers of the stored object always find it."""
    if node.get("type") == "object" and not required and not node.get("nullable") and "default" not in node:
        return dict(node, default={})
    return node


def _convert_any_of(node: dict, defs: dict) -> dict:
    options = [option for option in node["anyOf"] if option.get("type") != "null"]
    siblings = {key: value for key, value in node.items() if key != "anyOf"}
    nullable = len(options) < len(node["anyOf"])
    numeric = all(option.get("type") in ("integer", "number") and len(option) == 1 for option in options)
    if len(options) > 1 and numeric:
        options = [{"type": "number"}]  # int | float: one numeric type says it all
    if len(options) != 1:
        raise ValueError(
            f"cannot express a union of {len(options)} types as a structural schema: {node['anyOf']}; "
            "use one model with optional fields (or a discriminated union flattened into one object)"
        )
    result = _merge(_convert(options[0], defs), _convert_keys(siblings, defs))
    if nullable:
        result["nullable"] = True
    return result


def _merge(target: dict, siblings: dict) -> dict:
    """A referenced schema with the referring field's own keys (description, default) laid over it."""
    merged = dict(target)
    for key, value in siblings.items():
        if key == "description" and "enum" in target and target.get("description"):
            value = f"{value}\n{target['description']}"  # keep the enum's per-value documentation
        merged[key] = value
    return merged


def _infer_type(node: dict) -> str:
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node:
        return "array"
    values = node.get("enum", [])
    if values and all(isinstance(value, str) for value in values):
        return "string"
    raise ValueError(f"schema node has no type and none can be inferred: {node}")


class _EnumDocsSchema(GenerateJsonSchema):
    """Adds each enum value's docstring to the enum's description, so `kubectl explain` lists the choices."""

    def enum_schema(self, schema):
        result = super().enum_schema(schema)
        docs = member_docs(schema["cls"])
        if docs:
            result["description"] = "Values:\n" + "\n".join(f"- {value}: {doc}" for value, doc in docs.items())
        return result


def member_docs(enum_cls: type[Enum]) -> dict[str, str]:
    """`{value: docstring}` for enum members written with an attribute docstring below them."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(enum_cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
            and node.targets[0].id in enum_cls.__members__
        ):
            docs[str(enum_cls[node.targets[0].id].value)] = inspect.cleandoc(after.value.value)
    return docs


def plural_of(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith(("s", "x", "ch", "sh")) else "s")


def short_names(kind: str) -> list[str]:
    """`kubectl get` short names: explicit ones, else the kind's initials when they make two letters or more."""
    if kind in SHORT_NAMES:
        return SHORT_NAMES[kind]
    initials = "".join(char for char in kind if char.isupper()).lower()
    return [initials] if len(initials) >= 2 else []


def crd_filename(crd: dict) -> str:
    return f"{crd['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Sorted keys (like controller-gen) and multi-line descriptions as literal blocks, for readable diffs."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(crd: dict) -> str:
    return HEADER + yaml.dump(crd, Dumper=_Dumper, sort_keys=True, width=100, allow_unicode=True)


def write_crds(directory: str | Path) -> list[Path]:
    """Write every CRD to `directory` and delete generated files of kinds that no longer exist."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in generate_crds():
        path = directory / crd_filename(crd)
        path.write_text(to_yaml(crd), encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob(f"*.{API_GROUP}.yaml")) - set(written):
        stale.unlink()
    return written
