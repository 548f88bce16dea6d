"""The CRDs are generated from the spec models, structural, valid for Kubernetes, and committed without drift."""

from __future__ import annotations

import argparse
from enum import Enum
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from vlmtune.cli import crds as crds_command
from vlmtune.spec import KINDS
from vlmtune.spec.crd import (PRINTER_COLUMNS, crd_filename, crd_for, generate_crds, member_docs, structural_schema,
                              to_yaml, write_crds)
from vlmtune.spec.status import Phase

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "charts" / "vlmtune" / "crds"
FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "const", "title", "discriminator"}


def _schema(crd: dict) -> dict:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(node: dict, path: str = ""):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[{key}]")


@pytest.fixture(scope="module")
def crds() -> list[dict]:
    return generate_crds()


def test_committed_crds_match_the_models(crds):
    # Fails when a spec model changed without `vlmtune crds --write charts/vlmtune/crds`.
    for crd in crds:
        path = CRD_DIR / crd_filename(crd)
        assert path.exists(), f"{path} is missing: run `vlmtune crds --write charts/vlmtune/crds`"
        assert path.read_text(encoding="utf-8") == to_yaml(crd), f"{path} drifted: regenerate it"
    committed = {p.name for p in CRD_DIR.glob("*.vlmtune.dev.yaml")}
    assert committed == {crd_filename(crd) for crd in crds}, "stale CRD files of kinds that no longer exist"


def test_one_crd_per_kind_under_the_size_limit(crds):
    assert [crd["spec"]["names"]["kind"] for crd in crds] == list(KINDS)
    for crd in crds:
        assert len(to_yaml(crd).encode()) < 256 * 1024  # the API server's limit for an annotation-free apply


def test_crds_are_valid_customresourcedefinitions(crds):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for crd in crds:
        kubernetes_validate.validate(crd, "1.35", strict=True)


def test_schemas_are_structural(crds):
    for crd in crds:
        for path, node in _nodes(_schema(crd)):
            assert not FORBIDDEN_KEYS & set(node), f"{path}: {FORBIDDEN_KEYS & set(node)}"
            assert "type" in node, f"{path} has no type"
            assert node.get("additionalProperties") is not False, path
            assert "default" not in node or node["default"] is not None, path
            assert not ("properties" in node and "additionalProperties" in node), path


def test_every_spec_and_status_field_is_explained(crds):
    # `kubectl explain tuningjob.spec.training.learningRate` must say something.
    for crd in crds:
        root = _schema(crd)
        for part in ("spec", "status"):
            for path, node in _nodes(root["properties"][part], part):
                if "[additionalProperties]" not in path and "[items]" not in path.rsplit(".", 1)[-1]:
                    assert node.get("description"), f"{path} has no description"


def test_enums_defaults_and_optional_fields_survive_translation():
    spec = _schema(crd_for("TuningJob", KINDS["TuningJob"]))["properties"]["spec"]["properties"]
    mixture = spec["data"]["properties"]["mixture"]
    assert mixture["enum"] == ["uniform", "proportional", "weights"] and mixture["default"] == "proportional"
    assert "uniform: Every task contributes equally" in mixture["description"]  # per-value docs for explain
    learning_rate = spec["training"]["properties"]["learningRate"]
    assert learning_rate["minimum"] == 0 and learning_rate["exclusiveMinimum"] is True
    model_from = spec["model"]["properties"]["from"]
    assert model_from["nullable"] is True and model_from["required"] == ["job"]
    assert spec["data"]["required"] == ["sources"] and spec["data"]["properties"]["sources"]["minItems"] == 1


def _tuningjob(crds: list[dict]) -> dict:
    return next(crd for crd in crds if crd["spec"]["names"]["kind"] == "TuningJob")


def test_status_schema_comes_from_the_status_model(crds):
    status = _schema(_tuningjob(crds))["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [phase.value for phase in Phase]
    assert {"observedGeneration", "conditions", "rayJobName", "dashboardURL", "artifacts", "progress",
            "stage", "queue"} <= set(status)
    assert status["observedGeneration"]["type"] == "integer"
    assert status["conditions"]["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["metrics"]["additionalProperties"] == {"type": "number"}


def test_kind_names_subresource_and_printer_columns(crds):
    crd = _tuningjob(crds)
    assert crd["metadata"]["name"] == "tuningjobs.vlmtune.dev"
    assert crd["spec"]["names"]["shortNames"] == ["tj"] and crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    names = [column["name"] for column in version["additionalPrinterColumns"]]
    assert {"Phase", "Stage", "Progress", "Queue", "Age"} <= set(names)
    status = _schema(crd)["properties"]["status"]["properties"]
    for column in PRINTER_COLUMNS:
        if column["jsonPath"].startswith(".status."):
            assert column["jsonPath"].removeprefix(".status.") in status, column


def test_unions_that_kubernetes_cannot_express_are_refused():
    class Either(BaseModel):
        value: int | str

    with pytest.raises(ValueError, match="union of 2 types"):
        structural_schema(Either)


def test_numeric_union_becomes_one_number():
    class Amount(BaseModel):
        value: int | float | None = None

    assert structural_schema(Amount)["properties"]["value"] == {"type": "number", "nullable": True}


def test_member_docs_reads_attribute_docstrings():
    class Colour(str, Enum):
        red = "red"
        """Warm."""
        blue = "blue"

    assert member_docs(Colour) == {"red": "Warm."}


def test_write_removes_stale_files(tmp_path):
    (tmp_path / "oldkinds.vlmtune.dev.yaml").write_text("stale")
    (tmp_path / "unrelated.yaml").write_text("keep")
    written = write_crds(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in written] + ["unrelated.yaml"])


def main(argv: list[str]) -> int:
    """`vlmtune crds ...` through the subcommand's own parser (independent of the other subcommands)."""
    parser = argparse.ArgumentParser(prog="vlmtune")
    crds_command.register(parser.add_subparsers().add_parser, "crds")
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_prints_and_writes_the_same_crds(crds, capsys, tmp_path):
    assert main(["crds"]) == 0
    assert [doc for doc in yaml.safe_load_all(capsys.readouterr().out)] == crds
    assert main(["crds", "--write", str(tmp_path)]) == 0
    written = {p.name: yaml.safe_load(p.read_text()) for p in tmp_path.iterdir()}
    assert written == {crd_filename(crd): crd for crd in crds}
