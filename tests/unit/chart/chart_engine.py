"""The chart rendered by a real Helm engine: Helm v4's Go SDK through helm-python-sdk (the `test` extra).

helm-python-sdk ships Helm's engine as a shared library inside its wheel, so `pip install -e ".[test]"` is the
whole set-up: no helm binary, no network at test time. It renders like `helm template` (values coalesced with
the chart's defaults, values.schema.json enforced, `fail` surfaced as an error) and lints like `helm lint`.

A plain module (not conftest) so that test files import it by a name no other test folder uses.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "vlmtune"
SCENARIOS: dict[str, Path | None] = {
    "default": None,
    **{path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))},
}
"""Scenario name -> values file (None: the chart's defaults), as `helm template -f ci/<name>-values.yaml`."""
RELEASE = "vlmtune"
NAMESPACE = "vlmtune-system"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ResourceFlavor",
    "Cohort",
    "ClusterQueue",
    "WorkloadPriorityClass",
    "CustomResourceDefinition",
    "NodePool",
}


def helm():
    """The helm_python module; ImportError when helm-python-sdk is not installed."""
    import helm_python

    return helm_python


@functools.lru_cache(maxsize=1)
def chart():
    return helm().Chart.load(CHART)


@dataclass(frozen=True)
class Rendered:
    """`helm template` output: template path -> manifest text."""

    manifests: dict[str, str]
    values: dict

    @functools.cached_property
    def sources(self) -> list[tuple[str, dict]]:
        """(template file name, object) for every rendered object, in Helm's template order."""
        found = []
        for path, text in self.manifests.items():
            if path.endswith("NOTES.txt"):
                continue
            found += [(path.rsplit("/", 1)[-1], doc) for doc in yaml.safe_load_all(text) if doc]
        return found

    @property
    def objects(self) -> list[dict]:
        return [obj for _, obj in self.sources]

    @property
    def notes(self) -> str:
        return next((text for path, text in self.manifests.items() if path.endswith("NOTES.txt")), "")

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def from_template(self, template: str) -> list[dict]:
        return [obj for name, obj in self.sources if name == template]

    def one(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict:
        matches = [
            obj
            for obj in self.of_kind(kind)
            if (name is None or obj["metadata"]["name"] == name)
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]
        assert len(matches) == 1, f"{len(matches)} {kind} objects named {name!r} in {namespace!r}"
        return matches[0]


def scenario_values(scenario: str) -> dict:
    path = SCENARIOS[scenario]
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path else {}


def merge(base: dict, override: dict) -> dict:
    """Helm's merge of user values: maps merge key by key, anything else replaces, null deletes."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def user_values(scenario: str = "default", values: dict | None = None, sets: tuple[str, ...] = ()) -> dict:
    """What `helm template -f ci/<scenario>-values.yaml --set A --set B` passes: files, then values, then sets.

    Each --set is parsed by Helm's own parser and merged as a map; an index into a list (`a[0].b=c`) replaces the
    list here, where helm edits the element in place, so tests set list entries through `values` instead.
    """
    merged = merge(scenario_values(scenario), values or {})
    for expression in sets:
        merged = merge(merged, helm().parse_set_string(expression))  # Helm's own --set parser (strvals)
    return merged


def render(
    scenario: str = "default",
    values: dict | None = None,
    sets: tuple[str, ...] = (),
    name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    """Render like `helm template NAME charts/vlmtune -n NAMESPACE -f ... --set ...`.

    Raises:
        helm_python.HelmValuesError: the values break values.schema.json.
        helm_python.HelmRenderError: a template failed (e.g. a `fail` with the value path).
    """
    given = user_values(scenario, values, sets)
    manifests = chart().render(given, name=name, namespace=namespace, is_install=True)
    return Rendered(manifests, chart().merge_values(given))


def lint(scenario: str = "default", chart_dir: Path = CHART, strict: bool = True) -> dict:
    """`helm lint --strict [-f ci/<scenario>-values.yaml] CHART`: {"messages": [{severity, path, error}], ...}."""
    return helm().lint(chart_dir, user_values(scenario), strict=strict, namespace=NAMESPACE)
