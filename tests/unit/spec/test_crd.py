"""The CRDs are generated from the spec models, structural, valid for Kubernetes, and committed without drift."""

from __future__ import annotations

import argparse
import copy
from enum import Enum
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from vlmtune.cli import crds as crds_command
from vlmtune.spec import KINDS
from vlmtune.spec.crd import (
    PRINTER_COLUMNS,
    crd_filename,
    crd_for,
    generate_crds,
    member_docs,
    structural_schema,
    to_yaml,
    write_crds,
)
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
    assert {
        "observedGeneration",
        "conditions",
        "rayJobName",
        "dashboardURL",
        "artifacts",
        "progress",
        "stage",
        "queue",
    } <= set(status)
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


# ------------------------------------------------------------------------ CEL: the API server refuses it too


def _kube_schema():
    """tests/unit/operator/kube_schema.py (defaults, strict schema, CEL with cel-python), loaded by path."""
    import importlib.util

    path = REPO / "tests" / "unit" / "operator" / "kube_schema.py"
    spec = importlib.util.spec_from_file_location("_vlmtune_kube_schema_spec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tuning() -> dict:
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "stage1"},
        "spec": {
            "model": {"preset": "tiny"},
            "data": {"sources": [{"demo": {}}]},
            "training": {"globalBatchSize": 96},
            "resources": {"workers": 4, "gpusPerWorker": 1},
            "output": {"uri": "s3://runs/stage1"},
        },
    }


def _eval() -> dict:
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "eval"},
        "spec": {
            "model": {"preset": "tiny"},
            "benchmarks": [{"name": "pope", "demo": {}}],
            "output": {"uri": "s3://runs/eval"},
        },
    }


def _experiment() -> dict:
    stage = {"steps": 8, "data": {"sources": [{"demo": {"perTask": 8}}]}}
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "compare"},
        "spec": {
            "study": {"type": "mixed-vs-two-stage"},
            "base": {"model": {"preset": "tiny"}, "training": {"globalBatchSize": 4, "microBatchSize": 2}},
            "stages": {"stage1": stage, "stage2": copy.deepcopy(stage)},
            "evaluation": {"benchmarks": [{"name": "pope", "demo": {}}]},
            "resources": {"workers": 2},
            "output": {"uri": "s3://runs/compare"},
        },
    }


def _set(document: dict, path: str, value) -> dict:
    """Set `a.b.0.c` in `document`; a list index one past the end appends."""
    node = document
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        index = int(leaf)
        node[index : index + 1] = [value]
    else:
        node[leaf] = value
    return document


# (base document, changes as dotted path -> value, words the CEL message holds); pydantic rejects each one too.
PARITY = {
    "batch-not-divisible": (_tuning, {"spec.training.globalBatchSize": 98}, "globalBatchSize: must be divisible"),
    "elastic-batch": (
        _tuning,
        {"spec.resources.elastic": {"minWorkers": 2, "maxWorkers": 5}},
        "for every worker count W",
    ),
    "elastic-zero3": (
        _tuning,
        {"spec.resources.elastic": {"minWorkers": 2, "maxWorkers": 4}, "spec.training.deepspeed": {"zeroStage": 3}},
        "ZeRO-3 checkpoints",
    ),
    "bf16-on-cpu": (_tuning, {"spec.training.precision": "bf16", "spec.resources.gpusPerWorker": 0}, "fp16/bf16"),
    "offload-on-cpu": (
        _tuning,
        {"spec.training.deepspeed": {"zeroStage": 3, "offloadParams": True}, "spec.resources.gpusPerWorker": 0},
        "parameter offload needs GPUs",
    ),
    "elastic-min-above-max": (
        _tuning,
        {"spec.resources.elastic": {"minWorkers": 4, "maxWorkers": 2}},
        "maxWorkers: must be >= elastic.minWorkers",
    ),
    "workers-outside-elastic": (
        _tuning,
        {"spec.resources.workers": 8, "spec.resources.elastic": {"minWorkers": 2, "maxWorkers": 4}},
        "workers: start with",
    ),
    "checkpoint-layers": (_tuning, {"spec.training.checkpointLayers": 4}, "needs gradientCheckpointing"),
    "compile-with-zero3": (
        _tuning,
        {"spec.training.compileLayers": True, "spec.training.deepspeed": {"zeroStage": 3}},
        "compileLayers: not supported with deepspeed.zeroStage 3",
    ),
    "offload-activations-all-recomputed": (
        _tuning,
        {"spec.training.offloadActivations": True, "spec.training.gradientCheckpointing": True},
        "offloadActivations: every layer recomputes",
    ),
    "offload-without-zero3": (
        _tuning,
        {"spec.training.deepspeed": {"offloadParams": True}},
        "offloadParams: needs zeroStage: 3",
    ),
    "preset-and-pretrained": (_tuning, {"spec.model.pretrained": "s3://models/llava"}, "exactly one way: preset"),
    "language-model-alone": (
        _tuning,
        {"spec.model": {"languageModel": "lmsys/vicuna-7b-v1.5"}},
        "needs both languageModel and visionTower",
    ),
    "nothing-trainable": (_tuning, {"spec.model.trainable": []}, "list at least one part"),
    "trainable-twice": (_tuning, {"spec.model.trainable": ["projector", "projector"]}, "lists a part twice"),
    "projector-weights-on-pretrained": (
        _tuning,
        {"spec.model": {"pretrained": "s3://m", "projectorWeights": "s3://p"}},
        "already has a trained projector",
    ),
    "lora-without-language-model": (
        _tuning,
        {"spec.model.trainable": ["projector"], "spec.model.lora": {}},
        "lora: adapts the language model",
    ),
    "lora-module-name": (_tuning, {"spec.model.lora": {"targetModules": ["q-proj"]}}, "the last part of a layer"),
    "lora-module-twice": (
        _tuning,
        {"spec.model.lora": {"targetModules": ["q_proj", "q_proj"]}},
        "lists a module twice",
    ),
    "uri-and-demo": (_tuning, {"spec.data.sources.0.uri": "s3://d/a.json"}, "exactly one of uri or demo"),
    "images-for-demo": (_tuning, {"spec.data.sources.0.images": "s3://d/img"}, "only applies to a uri source"),
    "tasks-and-count": (_tuning, {"spec.data.tasks": ["a"], "spec.data.taskCount": 1}, "tasks or taskCount"),
    "weights-missing": (_tuning, {"spec.data.mixture": "weights"}, "mixture: weights needs weights and maxSamples"),
    "weights-all-zero": (
        _tuning,
        {"spec.data.mixture": "weights", "spec.data.maxSamples": 10, "spec.data.weights": {"a": 0}},
        "at least one above 0",
    ),
    "weights-without-mixture": (_tuning, {"spec.data.weights": {"a": 1}}, "only applies with mixture: weights"),
    "blank-output": (_tuning, {"spec.output.uri": "   "}, "output.uri: is empty"),
    "mlflow-on-s3": (_tuning, {"spec.output.mlflow": {}}, "trackingUri: required"),
    "name-of-70-characters": (_tuning, {"metadata.name": "a" * 70}, "metadata.name: at most 63 characters"),
    "eval-two-models": (_eval, {"spec.model.from": {"job": "stage1"}}, "exactly one way: preset, from or pretrained"),
    "benchmark-data-and-demo": (_eval, {"spec.benchmarks.0.data": "s3://pope"}, "exactly one of data or demo"),
    "images-not-heldout": (
        _eval,
        {"spec.benchmarks.0": {"name": "pope", "data": "s3://p", "images": "s3://i"}},
        "only a heldout benchmark",
    ),
    "demo-tasks-not-heldout": (_eval, {"spec.benchmarks.0.demo": {"tasks": ["a"]}}, "only the heldout benchmark"),
    "demo-without-heldout": (_eval, {"spec.benchmarks.0.demo": {"heldoutPerTask": 0}}, "need at least 1"),
    "benchmark-twice": (_eval, {"spec.benchmarks.1": {"name": "pope", "demo": {}}}, "list each benchmark once"),
    "experiment-from-a-job": (_experiment, {"spec.base.model": {"from": {"job": "x"}}}, "every arm starts from"),
    "experiment-max-steps": (_experiment, {"spec.base.training.maxSteps": 5}, "sets each stage's length"),
    "experiment-budgets-differ": (
        _experiment,
        {
            "spec.base.training.globalBatchSize": 8,
            "spec.stages.stage2.steps": 3,
            "spec.stages.stage2.training": {"globalBatchSize": 4},
        },
        "whole number of the mixed arm's global batches",
    ),
    "experiment-more-tasks-than-listed": (
        _experiment,
        {"spec.study": {"type": "task-scaling", "taskCounts": [3]}, "spec.stages.stage1.data.tasks": ["a", "b"]},
        "more tasks than",
    ),
    "experiment-mixed-with-task-subset": (
        _experiment,
        {"spec.stages.stage1.data.tasks": ["a"], "spec.stages.stage2.data.taskCount": 1},
        "trains on the union of both stages' data",
    ),
    "experiment-mixed-with-task-count": (
        _experiment,
        {"spec.stages.stage1.data.taskCount": 1, "spec.stages.stage2.data.tasks": ["a"]},
        "trains on the union of both stages' data",
    ),
    "experiment-mixed-with-weights": (
        _experiment,
        {
            "spec.stages.stage1.data.mixture": "weights",
            "spec.stages.stage1.data.maxSamples": 8,
            "spec.stages.stage1.data.weights": {"a": 1},
            "spec.stages.stage2.data.mixture": "weights",
            "spec.stages.stage2.data.maxSamples": 8,
            "spec.stages.stage2.data.weights": {"a": 1},
        },
        "trains on the union of both stages' data",
    ),
    "experiment-synthetic-without-samples": (
        _experiment,
        {"spec.study": {"type": "synthetic-scaling"}},
        "synthetic-scaling takes syntheticSamples",
    ),
    "experiment-samples-twice": (
        _experiment,
        {"spec.study": {"type": "synthetic-scaling", "syntheticSamples": [0, 0]}},
        "lists an arm twice",
    ),
    "experiment-ablation-without-arms": (
        _experiment,
        {"spec.study": {"type": "trainable-ablation"}},
        "trainable-ablation takes trainable",
    ),
    "experiment-scaling-without-counts": (
        _experiment,
        {"spec.study": {"type": "task-scaling"}},
        "task-scaling takes taskCounts",
    ),
    "experiment-arm-list-twice": (
        _experiment,
        {"spec.study": {"type": "trainable-ablation", "trainable": [["projector"], ["projector"]]}},
        "lists an arm twice",
    ),
    "experiment-parameter-of-another-study": (
        _experiment,
        {"spec.study.taskCounts": [2]},
        "mixed-vs-two-stage takes no parameter",
    ),
    "experiment-arm-twice": (
        _experiment,
        {"spec.study": {"type": "task-scaling", "taskCounts": [2, 2]}},
        "lists an arm twice",
    ),
    "experiment-part-twice": (
        _experiment,
        {"spec.study": {"type": "trainable-ablation", "trainable": [["projector", "projector"]]}},
        "an arm lists a part twice",
    ),
    "experiment-batch-over-workers": (_experiment, {"spec.resources.workers": 3}, "divisible by resources.workers"),
    "experiment-bf16-on-cpu": (_experiment, {"spec.base.training.precision": "bf16"}, "fp16/bf16"),
    "experiment-offload-on-cpu": (
        _experiment,
        {"spec.base.training.deepspeed": {"zeroStage": 3, "offloadParams": True}},
        "parameter offload needs GPUs",
    ),
}


@pytest.fixture(scope="module")
def admission():
    pytest.importorskip("celpy")
    kube_schema = _kube_schema()
    schemas = {crd["spec"]["names"]["kind"]: kube_schema.crd_schema(crd, "v1alpha1") for crd in generate_crds()}
    return kube_schema, schemas


@pytest.fixture(scope="module")
def verdicts(admission) -> dict:
    """Case -> (the changed document, the API server's errors): cel-python is slow, so each case runs once."""
    kube_schema, schemas = admission
    cache = {}

    def verdict(case: str):
        if case not in cache:
            base, changes, _ = PARITY[case]
            document = base()
            for path, value in changes.items():
                _set(document, path, value)
            cache[case] = document, kube_schema.admit(schemas[document["kind"]], document)[1]
        return cache[case]

    return verdict


@pytest.mark.parametrize("case", PARITY)
def test_the_crd_refuses_what_the_models_refuse(admission, verdicts, case):
    kube_schema, schemas = admission
    base, _, words = PARITY[case]
    valid = base()
    assert kube_schema.admit(schemas[valid["kind"]], valid)[1] == []  # the base document is valid for both
    document, errors = verdicts(case)
    with pytest.raises(ValueError):
        KINDS[document["kind"]].model_validate(document)
    assert any(words in error for error in errors), errors


def test_every_cel_rule_has_a_case_that_trips_it(verdicts):
    from vlmtune.spec.cel import NAME_RULE, RULES

    tripped = {error.split(": ", 1)[1] for case in PARITY for error in verdicts(case)[1]}
    messages = {rule["message"] for rules in RULES.values() for rule in rules} | {NAME_RULE["message"]}
    assert messages <= tripped, sorted(messages - tripped)


def test_spec_is_immutable_except_suspend(admission):
    kube_schema, schemas = admission
    stored = _tuning()
    edited = _set(copy.deepcopy(stored), "spec.training.learningRate", 1e-4)
    _, errors = kube_schema.admit(schemas["TuningJob"], edited, old=stored)
    assert errors == [
        "spec.training: spec.training is immutable: delete the job and apply it again to change it "
        "(only spec.suspend may change)"
    ]
    paused = _set(copy.deepcopy(stored), "spec.suspend", True)
    assert kube_schema.admit(schemas["TuningJob"], paused, old=stored)[1] == []
    relabelled = _set(copy.deepcopy(stored), "metadata.labels", {"team": "vision"})
    assert kube_schema.admit(schemas["TuningJob"], relabelled, old=stored)[1] == []
    for crd in generate_crds():  # every spec field but suspend carries the rule, in every kind
        spec = _schema(crd)["properties"]["spec"]["properties"]
        for name, node in spec.items():
            rules = [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]
            assert ("self == oldSelf" in rules) == (name != "suspend"), (crd["metadata"]["name"], name)


def test_conditions_are_a_list_map_keyed_by_type(crds):
    for crd in crds:
        conditions = _schema(crd)["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert "type" in conditions["items"]["required"]  # a map key must be required


def test_reason_is_a_printer_column(crds):
    names = [column["name"] for column in crds[0]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names[:2] == ["Phase", "Reason"]


def test_optional_sections_default_to_empty_so_rules_can_read_them(crds):
    spec = _schema(_tuningjob(crds))["properties"]["spec"]["properties"]
    assert spec["training"]["default"] == {} and spec["resources"]["default"] == {}
    assert "default" not in spec["model"]  # required
    assert "default" not in spec["model"]["properties"]["lora"]  # nullable: absent means none


@pytest.mark.parametrize(
    "bounds, batch, accepted",
    [((2, 4), 96, True), ((33, 35), 39270, True), ((33, 66), 39270, False), ((1, 1), 7, True)],
)
def test_the_elastic_batch_rule_covers_every_worker_count(admission, bounds, batch, accepted):
    # 39270 = lcm(33, 34, 35): divisible by each count in [33, 35], not by 36 or by 65 (the second loop's range).
    kube_schema, schemas = admission
    document = _set(
        _set(_tuning(), "spec.resources.elastic", {"minWorkers": bounds[0], "maxWorkers": bounds[1]}),
        "spec.training.globalBatchSize",
        batch,
    )
    _set(document, "spec.resources.workers", bounds[0])
    _, errors = kube_schema.admit(schemas["TuningJob"], document)
    models_accept = True
    try:
        KINDS["TuningJob"].model_validate(document)
    except ValueError:
        models_accept = False
    assert (not errors) == accepted == models_accept, errors
