"""CEL `x-kubernetes-validations` for the cross-field checks the spec models make, so the API server refuses what
the operator would refuse (an indivisible batch, two model sources, elastic min > max) at `kubectl apply`.

Each rule mirrors one model validator (named in the comment above it) and is attached to the schema of that model
by `vlmtune.spec.crd`; tests feed every rule's failing case to both pydantic and cel-python. Rules run after the
API server's defaulting: optional sections with defaults are present, nullable fields may be absent or null.
"""

from __future__ import annotations

from vlmtune.spec.eval import BenchmarkName
from vlmtune.spec.metadata import _DNS_LABEL

STEPS = "[" + ",".join(str(n) for n in range(32)) + "]"
"""0..31: CEL has no range(), so worker counts minWorkers + 32 i + j (i, j in 0..31) cover any elastic range
(ElasticSpec allows 1..1024 workers)."""
NAME_RULE = {
    "rule": f"self.metadata.name.size() <= 63 && self.metadata.name.matches('{_DNS_LABEL.pattern}')",
    "message": "metadata.name: at most 63 characters, lowercase letters, digits and '-' (an RFC 1123 label: it "
    "becomes pod, service and label values)",
}


def present(path: str) -> str:
    """`self.<path>` is there and not null (nullable fields may be sent as null)."""
    return f"(has(self.{path}) && type(self.{path}) != null_type)"


def _rule(rule: str, message: str) -> dict:
    return {"rule": rule, "message": message}


def _batch_rules(training: str, resources: str, where: str) -> list[dict]:
    """TuningJobSpec._consistent (global batch, elastic + ZeRO-3, precision and offload without GPUs), for a spec
    whose training settings live at `training` and resources at `resources`."""
    gbs, micro = f"self.{training}.globalBatchSize", f"self.{training}.microBatchSize"
    elastic = f"self.{resources}.elastic"
    return [
        _rule(
            f"{present(resources + '.elastic')} || {gbs} % (self.{resources}.workers * {micro}) == 0",
            f"{where}.{training}.globalBatchSize: must be divisible by {resources}.workers x {training}.microBatchSize",
        ),
        # Conditionals, not ||: evaluators need not short-circuit, and each skipped branch is a loop not run.
        _rule(
            f"!{present(resources + '.elastic')} ? true : {STEPS}.all(i, "
            f"{elastic}.minWorkers + 32 * i > {elastic}.maxWorkers ? true : {STEPS}.all(j, "
            f"{elastic}.minWorkers + 32 * i + j > {elastic}.maxWorkers ? true : "
            f"{gbs} % (({elastic}.minWorkers + 32 * i + j) * {micro}) == 0))",
            f"{where}.{training}.globalBatchSize: must be divisible by W x microBatchSize for every worker count "
            f"W in [elastic.minWorkers, elastic.maxWorkers]",
        ),
        _rule(
            f"!{present(resources + '.elastic')} || self.{training}.deepspeed.zeroStage != 3",
            f"{where}.{resources}.elastic: ZeRO-3 checkpoints cannot be loaded at another world size; use "
            "zeroStage 0, 1 or 2, or remove elastic",
        ),
        _rule(
            f"!(self.{training}.precision in ['fp16', 'bf16']) || self.{resources}.gpusPerWorker > 0",
            f"{where}.{training}.precision: fp16/bf16 training needs GPUs but {resources}.gpusPerWorker is 0",
        ),
        _rule(
            f"!(self.{training}.deepspeed.zeroStage == 3 && self.{training}.deepspeed.offloadParams) || "
            f"self.{resources}.gpusPerWorker > 0",
            f"{where}.{training}.deepspeed.offloadParams: parameter offload needs GPUs",
        ),
    ]


def _unique(path: str) -> str:
    return f"!{present(path)} || self.{path}.all(x, self.{path}.exists_one(y, y == x))"


_STUDY = {
    "mixed-vs-two-stage": None,
    "task-scaling": "taskCounts",
    "synthetic-scaling": "syntheticSamples",
    "trainable-ablation": "trainable",
}


def _study_rules() -> list[dict]:
    """Experiment._problems / _study_problems: the parameter that matches `type`, and only it; each arm once."""
    rules = []
    for study, wanted in _STUDY.items():
        checks = [
            (present(name) if name == wanted else f"!{present(name)}")
            for name in ("taskCounts", "syntheticSamples", "trainable")
        ]
        rules.append(
            _rule(
                f"self.type != '{study}' || ({' && '.join(checks)})",
                f"study: {study} takes {wanted or 'no parameter'} and none of the others",
            )
        )
    rules += [
        _rule(_unique(name), f"study.{name}: lists an arm twice")
        for name in ("taskCounts", "syntheticSamples", "trainable")
    ]
    rules.append(
        _rule(
            f"!{present('trainable')} || self.trainable.all(arm, arm.all(p, arm.exists_one(q, q == p)))",
            "study.trainable: an arm lists a part twice",
        )
    )
    return rules


def _stage_batch(stage: str, key: str) -> str:
    """A stage's batch setting, falling back to spec.base.training's (ExperimentSpec's _global_batch)."""
    return (
        f"({present(f'stages.{stage}.training.{key}')} ? self.stages.{stage}.training.{key} : self.base.training.{key})"
    )


def _experiment_rules() -> list[dict]:
    """Experiment._problems and the batch checks every generated TuningJob makes (TuningJobSpec._consistent)."""
    g1, g2 = _stage_batch("stage1", "globalBatchSize"), _stage_batch("stage2", "globalBatchSize")
    rules = [
        _rule(
            f"!{present('base.model.from')}",
            "spec.base.model.from: every arm starts from the same model; name it "
            "as preset, pretrained or languageModel + visionTower",
        ),
        _rule(
            f"!{present('base.training.maxSteps')} && self.base.training.epochs == 1",
            "spec.base.training: the experiment sets each stage's length itself; remove maxSteps/epochs and set "
            "spec.stages.<stage>.steps",
        ),
        _rule(
            f"self.study.type != 'mixed-vs-two-stage' || (self.stages.stage2.steps * {g2}) % {g1} == 0",
            "spec.stages.stage2.steps: stage 2's samples (steps x globalBatchSize) must be a whole number of the "
            "mixed arm's global batches (stage 1's globalBatchSize)",
        ),
        _rule(
            f"!{present('study.taskCounts')} || !{present('stages.stage1.data.tasks')} || "
            "self.study.taskCounts.all(c, c <= self.stages.stage1.data.tasks.size())",
            "spec.study.taskCounts: asks for more tasks than spec.stages.stage1.data.tasks lists",
        ),
    ]
    for stage in ("stage1", "stage2"):
        for key in ("tasks", "taskCount", "weights"):
            rules.append(
                _rule(
                    f"self.study.type != 'mixed-vs-two-stage' || !{present(f'stages.{stage}.data.{key}')}",
                    f"spec.stages.{stage}.data.{key}: the mixed arm trains on the union of both stages' "
                    "data, where one stage's selection would cut the other's tasks",
                )
            )
        gbs, micro = _stage_batch(stage, "globalBatchSize"), _stage_batch(stage, "microBatchSize")
        rules.append(
            _rule(
                f"{present('resources.elastic')} || {gbs} % (self.resources.workers * {micro}) == 0",
                f"spec.stages.{stage}: the stage's globalBatchSize must be divisible by resources.workers "
                "x its microBatchSize",
            )
        )
    return rules + _batch_rules("base.training", "resources", "spec")[2:]


RULES: dict[str, list[dict]] = {
    # TuningJobSpec._consistent
    "TuningJobSpec": _batch_rules("training", "resources", "spec"),
    # ResourcesSpec._workers_inside_elastic_range
    "ResourcesSpec": [
        _rule(
            f"!{present('elastic')} || self.elastic.minWorkers <= self.elastic.maxWorkers",
            "elastic.maxWorkers: must be >= elastic.minWorkers",
        ),
        _rule(
            f"!{present('elastic')} || (self.workers >= self.elastic.minWorkers && "
            "self.workers <= self.elastic.maxWorkers)",
            "workers: start with a worker count between elastic.minWorkers and elastic.maxWorkers",
        ),
    ],
    # TrainingSpec._checkpoint_layers_need_checkpointing
    "TrainingSpec": [
        _rule(
            f"!{present('checkpointLayers')} || self.gradientCheckpointing",
            "checkpointLayers: needs gradientCheckpointing: true",
        ),
        # TrainingSpec._levers_fit_together
        _rule(
            "!self.compileLayers || self.deepspeed.zeroStage != 3",
            "compileLayers: not supported with deepspeed.zeroStage 3; use zeroStage 2",
        ),
        _rule(
            f"!self.offloadActivations || !self.gradientCheckpointing || {present('checkpointLayers')}",
            "offloadActivations: every layer recomputes; set checkpointLayers below the layer count",
        ),
    ],
    # DeepSpeedSpec._offload_params_needs_zero3
    "DeepSpeedSpec": [_rule("!self.offloadParams || self.zeroStage == 3", "offloadParams: needs zeroStage: 3")],
    # ModelSpec._exactly_one_source and _combination_problems
    "ModelSpec": [
        _rule(
            "["
            + ", ".join(
                [
                    present("preset"),
                    present("from"),
                    present("pretrained"),
                    f"({present('languageModel')} || {present('visionTower')})",
                ]
            )
            + "].filter(x, x).size() == 1",
            "model: name the model exactly one way: preset, from, pretrained, or languageModel + visionTower",
        ),
        _rule(
            f"{present('languageModel')} == {present('visionTower')}",
            "model: a pretrained model needs both languageModel and visionTower",
        ),
        _rule("!has(self.trainable) || self.trainable.size() > 0", "model.trainable: list at least one part"),
        _rule(_unique("trainable"), "model.trainable: lists a part twice"),
        _rule(
            f"!{present('projectorWeights')} || !({present('from')} || {present('pretrained')})",
            "model.projectorWeights: a from/pretrained model already has a trained projector",
        ),
        _rule(
            f"!{present('lora')} || !has(self.trainable) || 'language_model' in self.trainable",
            "model.lora: adapts the language model, but language_model is not in trainable",
        ),
    ],
    # LoraSpec._plain_module_names
    "LoraSpec": [
        _rule(
            "!has(self.targetModules) || self.targetModules.all(m, m.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
            "lora.targetModules: write the last part of a layer's name, e.g. q_proj",
        ),
        _rule(_unique("targetModules"), "lora.targetModules: lists a module twice"),
    ],
    # DataSource._uri_or_demo
    "DataSource": [
        _rule(f"{present('uri')} != {present('demo')}", "sources[]: give exactly one of uri or demo"),
        _rule(f"!{present('demo')} || !{present('images')}", "sources[].images: only applies to a uri source"),
    ],
    # DataSpec._mixture_settings_agree
    "DataSpec": [
        _rule(f"!({present('tasks')} && {present('taskCount')})", "data: give tasks or taskCount, not both"),
        _rule(
            f"self.mixture != 'weights' || ({present('weights')} && self.weights.size() > 0 && "
            f"{present('maxSamples')})",
            "data: mixture: weights needs weights and maxSamples",
        ),
        _rule(
            f"!{present('weights')} || (self.weights.all(k, double(self.weights[k]) >= 0.0) && "
            "self.weights.exists(k, double(self.weights[k]) > 0.0))",
            "data.weights: must be >= 0 with at least one above 0",
        ),
        _rule(
            f"self.mixture == 'weights' || !{present('weights')}", "data.weights: only applies with mixture: weights"
        ),
    ],
    # OutputSpec._not_blank and _default_mlflow_store_needs_a_local_output
    "OutputSpec": [
        _rule("self.uri.matches('\\\\S')", "output.uri: is empty; give a folder or an s3:// URI"),
        _rule(
            f"!{present('mlflow')} || {present('mlflow.trackingUri')} || "
            "!(self.uri.contains('://') && !self.uri.startsWith('file://'))",
            "output.mlflow.trackingUri: required when output.uri is an object store",
        ),
    ],
    # EvalModelSpec._exactly_one_source
    "EvalModelSpec": [
        _rule(
            "[" + ", ".join(present(name) for name in ("preset", "from", "pretrained")) + "].filter(x, x).size() == 1",
            "model: name the model exactly one way: preset, from or pretrained",
        )
    ],
    # BenchmarkSpec._one_source
    "BenchmarkSpec": [
        _rule(f"{present('data')} != {present('demo')}", "benchmarks[]: give exactly one of data or demo"),
        _rule(
            f"!{present('images')} || (self.name == '{BenchmarkName.heldout.value}' && {present('data')})",
            "benchmarks[].images: only a heldout benchmark read from data takes an image folder",
        ),
        _rule(
            f"!{present('demo')} || !{present('demo.tasks')} || self.demo.tasks.size() == 0 || "
            f"self.name == '{BenchmarkName.heldout.value}'",
            "benchmarks[].demo.tasks: only the heldout benchmark selects tasks",
        ),
        _rule(
            f"!{present('demo')} || self.demo.heldoutPerTask != 0",
            "benchmarks[].demo.heldoutPerTask: demo benchmarks need at least 1",
        ),
    ],
    # EvalJobSpec._each_benchmark_once
    "EvalJobSpec": [
        _rule(
            "self.benchmarks.all(b, self.benchmarks.exists_one(c, c.name == b.name))",
            "benchmarks: list each benchmark once",
        )
    ],
    # Experiment._expands (the checks that need no expansion)
    "ExperimentSpec": _experiment_rules(),
    "StudySpec": _study_rules(),
}
"""Model class name -> the CEL rules of its schema node."""

IMMUTABLE_MESSAGE = "is immutable: delete the job and apply it again to change it (only spec.suspend may change)"
MUTABLE_SPEC_FIELDS = {"suspend"}
