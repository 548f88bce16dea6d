"""The import direction of DESIGN.md, for the whole tree, read from the source (every import, lazy ones too).

cli -> runners -> plan / report / bench -> train / eval -> data -> spec
the whole library may use the shared edges (storage, node_cache) and vlmtune_model;
vlmtune_model imports nothing of vlmtune; the operator imports vlmtune.spec alone; no cycles.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "vlmtune": REPO / "platform" / "vlmtune",
    "vlmtune_model": REPO / "model" / "vlmtune_model",
    "vlmtune_operator": REPO / "operators" / "vlmtune_operator",
}
# Lower layers first; a package may import its own layer and any layer below it.
LAYERS = [
    {"vlmtune.spec"},
    {"vlmtune.storage", "vlmtune.node_cache", "vlmtune"},
    {"vlmtune.data"},
    {"vlmtune.train", "vlmtune.eval"},
    {"vlmtune.plan", "vlmtune.report", "vlmtune.bench"},
    {"vlmtune.runners"},
    {"vlmtune.cli"},
]
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def modules() -> dict[str, Path]:
    found = {}
    for top, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join([top, *parts]).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> set[str]:
    """Our modules `name` imports anywhere in its source (a `from pkg import mod` counts as `pkg.mod`)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "vlmtune":
        return parts[0]
    return "vlmtune" if len(parts) == 1 else f"vlmtune.{parts[1]}"


def test_the_model_package_imports_nothing_of_vlmtune():
    offending = {
        m: sorted(t for t in targets if package_of(t).startswith("vlmtune") and package_of(t) != "vlmtune_model")
        for m, targets in GRAPH.items()
        if package_of(m) == "vlmtune_model"
    }
    assert not {m: t for m, t in offending.items() if t}


def test_the_operator_imports_only_the_spec_face():
    offending = {
        m: sorted(t for t in targets if package_of(t) not in ("vlmtune_operator",) and t != "vlmtune.spec")
        for m, targets in GRAPH.items()
        if package_of(m) == "vlmtune_operator"
    }
    assert not {m: t for m, t in offending.items() if t}


@pytest.mark.parametrize("package", sorted(LAYER_OF))
def test_each_package_imports_only_its_layer_and_below(package):
    level = LAYER_OF[package]
    upward = {}
    for module, targets in GRAPH.items():
        if package_of(module) != package:
            continue
        above = sorted(t for t in targets if package_of(t) in LAYER_OF and LAYER_OF[package_of(t)] > level)
        if above:
            upward[module] = above
    assert not upward, f"{package} (layer {level}) imports upward: {upward}"


def test_data_never_imports_train_or_eval_and_train_never_imports_eval():
    forbidden = {"vlmtune.data": {"vlmtune.train", "vlmtune.eval"}, "vlmtune.train": {"vlmtune.eval"}}
    offending = {
        m: sorted(t for t in targets if package_of(t) in forbidden.get(package_of(m), ()))
        for m, targets in GRAPH.items()
    }
    assert not {m: t for m, t in offending.items() if t}


def test_no_import_cycles_between_modules():
    cycles = [sorted(component) for component in strongly_connected(GRAPH) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_no_import_cycles_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        packages[package_of(module)] |= {package_of(t) for t in targets if package_of(t) != package_of(module)}
    packages.pop("vlmtune", None)  # the root package only re-exports
    cycles = [sorted(component) for component in strongly_connected(packages) if len(component) > 1]
    assert not cycles, f"package cycles: {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                result.append(component)
    return result


def test_the_checker_sees_real_edges():
    assert "vlmtune.data.shards" in GRAPH["vlmtune.data.reader"]
    assert "vlmtune.spec" in GRAPH["vlmtune_operator.rayjob"]
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) in ([{"a", "b"}, {"c"}], [{"c"}, {"a", "b"}])


@pytest.mark.parametrize("package", ["vlmtune.data", "vlmtune.runners", "vlmtune.train"])
def test_each_public_face_names_what_exists_and_imports_nothing_heavy(package):
    """The faces load names on first use: importing one costs nothing, and every name it lists resolves."""
    import subprocess
    import sys

    probe = (
        f"import sys, {package} as face; heavy = [m for m in ('ray', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy; [getattr(face, name) for name in face.__all__]"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=300)
