"""The `Experiment` kind: named arms (pipelines of TuningJobs ending in an EvalJob) that share one budget.

An experiment is never run as such: `expand` turns it into ordinary TuningJob/EvalJob documents with derived
names (`<experiment>-<arm>-<stage>`) and outputs under the experiment's output, so chaining, skipping, resume
and the operator's per-job machinery apply unchanged. The four generators follow the VISION-FLAN analyses:
two-stage vs mixed, task-count scaling at a fixed total, stage-2 synthetic-data scaling, and trainable parts.

On a cluster the operator creates each generated job as a child TuningJob/EvalJob custom resource owned by
the experiment (each with its own RayJob of `resources`, chained by `from: {job}`), and writes the report
with a last small RayJob once every child succeeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from vlmtune.spec.base import API_VERSION, JobKind, SpecModel
from vlmtune.spec.data import DataSpec
from vlmtune.spec.errors import FieldIssues
from vlmtune.spec.eval import BenchmarkSpec, EvalJob, GenerationSpec, JudgeSpec, benchmark_problems
from vlmtune.spec.issues import issues_from_validation
from vlmtune.spec.metadata import ObjectMeta
from vlmtune.spec.model import ModelSpec, TrainablePart
from vlmtune.spec.output import OutputSpec
from vlmtune.spec.resources import ResourcesSpec
from vlmtune.spec.training import TrainingSpec
from vlmtune.spec.tuning import TuningJob

EXPERIMENT_LABEL = "vlmtune.dev/experiment"
ARM_LABEL = "vlmtune.dev/arm"
SHARED_ARM = "shared"
"""Arm part of the name of a stage several arms start from (synthetic-data scaling shares stage 1)."""
MAX_NAME_LENGTH = 63


class StudyType(str, Enum):
    mixed_vs_two_stage = "mixed-vs-two-stage"
    """Arm `two-stage` (stage 1, then stage 2 from it) against arm `mixed` (one stage on the union of both stages'
    data, with stage 1's settings, for the same number of training samples)."""
    task_scaling = "task-scaling"
    """One arm per entry of `taskCounts`: stage 1 on that many tasks with the same total samples, then stage 2."""
    synthetic_scaling = "synthetic-scaling"
    """One shared stage 1, then one arm per entry of `syntheticSamples`: stage 2 on that many samples (0: no stage
    2), always for stage 2's steps. Tracks POPE's yes-ratio against the stage-2 data size."""
    trainable_ablation = "trainable-ablation"
    """One arm per entry of `trainable`: both stages train only those parts."""


class StageTraining(SpecModel):
    """What a stage changes in `spec.base.training` (the paper's stage 2: lr 1e-5, global batch 8)."""

    learning_rate: float | None = Field(default=None, gt=0, le=1)
    """Peak learning rate of this stage."""
    warmup_ratio: float | None = Field(default=None, ge=0, lt=1)
    """Fraction of this stage's steps spent warming up."""
    global_batch_size: int | None = Field(default=None, ge=1)
    """Samples per optimizer step in this stage."""
    micro_batch_size: int | None = Field(default=None, ge=1)
    """Samples per forward pass on one worker in this stage."""


class StageSpec(SpecModel):
    """One stage's data and its share of the budget."""

    data: DataSpec
    """Training data of the stage."""
    steps: int = Field(ge=1)
    """Optimizer steps: the stage's share of the budget (training samples = steps x globalBatchSize)."""
    training: StageTraining = Field(default_factory=StageTraining)
    """Changes to spec.base.training for this stage only."""


class StagesSpec(SpecModel):
    """The two stages of the recipe; every study is built from them."""

    stage1: StageSpec
    """Many human-labeled tasks (Vision-Flan)."""
    stage2: StageSpec
    """A short alignment pass (GPT-4-written conversations)."""


class ExperimentBase(SpecModel):
    """What every TuningJob of the experiment shares."""

    model: ModelSpec
    """The model every arm starts from (a preset, a pretrained export, or pretrained parts)."""
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """Optimisation settings; each stage's length comes from spec.stages.<stage>.steps."""


class EvaluationSpec(SpecModel):
    """The EvalJob that ends every arm."""

    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    """Benchmarks to run on each arm's final model; each name at most once."""
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    """Decoding settings."""
    judge: JudgeSpec | None = None
    """Who scores open-ended answers (LLaVA-Bench, MM-Vet) for every arm; one judge, so arms compare."""

    @model_validator(mode="after")
    def _benchmarks_can_be_scored(self) -> EvaluationSpec:
        problems = benchmark_problems(self.benchmarks, self.judge)
        if problems:
            raise FieldIssues(problems)
        return self


class StudySpec(SpecModel):
    """Which comparison the arms make; the parameter matching `type` is required, the others must be absent."""

    type: StudyType
    """The generator of the arms."""
    task_counts: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    """task-scaling: stage-1 task counts, one arm each, all trained on the same total of stage-1 samples (N/k per
    task). An arm takes the first k of stage 1's `data.tasks` when it lists names, else k tasks drawn with its seed."""
    synthetic_samples: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """synthetic-scaling: stage-2 sample counts, one arm each (0 trains stage 1 only)."""
    trainable: list[Annotated[list[TrainablePart], Field(min_length=1)]] | None = Field(default=None, min_length=1)
    """trainable-ablation: the trainable parts of each arm, e.g. [[projector], [language_model]]."""


_EXAMPLES = {
    "taskCounts": "[10, 13]",
    "syntheticSamples": "[0, 500, 1000]",
    "trainable": "[[projector], [language_model], [projector, language_model]]",
}
_STUDY_PARAMS = {
    StudyType.mixed_vs_two_stage: None,
    StudyType.task_scaling: "taskCounts",
    StudyType.synthetic_scaling: "syntheticSamples",
    StudyType.trainable_ablation: "trainable",
}


class ExperimentSpec(SpecModel):
    """A study: shared settings, the two stages' data and budgets, the evaluation, and the comparison."""

    study: StudySpec
    """Which comparison to make."""
    base: ExperimentBase
    """Model and training settings every arm shares."""
    stages: StagesSpec
    """Stage 1 and stage 2: data and steps."""
    evaluation: EvaluationSpec
    """How every arm's final model is evaluated."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Workers of every generated job (on a cluster: the size of each child job's Ray cluster)."""
    output: OutputSpec
    """Run folder: each job writes under <uri>/<arm>/<stage>; the report goes to <uri>."""


class Experiment(JobKind, SpecModel):
    """A comparison of training recipes under one budget, written as a Kubernetes custom resource."""

    api_version: Literal["vlmtune.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    """Always vlmtune.dev/v1alpha1."""
    kind: Literal["Experiment"] = "Experiment"
    """Always Experiment."""
    metadata: ObjectMeta
    """Name (the prefix of every generated job), namespace and labels (inherited by the generated jobs)."""
    spec: ExperimentSpec
    """The experiment itself."""

    def upstream_jobs(self) -> list[str]:
        """An experiment starts from a model, never from another job's output."""
        return []

    @model_validator(mode="after")
    def _expands(self) -> Experiment:
        problems = list(_problems(self.spec))
        if not problems:
            try:
                expand(self)
            except InvalidGeneratedJob as err:  # say which generated job and why, at the experiment's spec
                problems = [
                    (
                        (),
                        f"generated job {err.job}: {issue.path}: {issue.message}",
                        issue.fix or "fix the experiment's base, stages or evaluation settings",
                    )
                    for issue in err.issues
                ]
        if problems:
            raise FieldIssues([(("spec", *path), message, fix) for path, message, fix in problems])
        return self


class InvalidGeneratedJob(ValueError):
    """A job the expansion generated is invalid (e.g. a stage's batch does not divide over the workers)."""

    def __init__(self, job: str, issues: list):
        self.job, self.issues = job, list(issues)
        super().__init__(f"{job}: " + "; ".join(f"{issue.path}: {issue.message}" for issue in self.issues))

    def __reduce__(self):
        return (InvalidGeneratedJob, (self.job, self.issues))


# ------------------------------------------------------------------------------------------- validation


def _problems(spec: ExperimentSpec) -> Iterator[tuple[tuple, str, str | None]]:
    """Problems no single generated job would show: budgets, study parameters, settings the expansion owns."""
    if spec.base.model.from_ is not None:
        yield (
            ("base", "model", "from"),
            "every arm starts from the same model, not from another job",
            "name the model as `preset`, `pretrained` or `languageModel` + `visionTower`",
        )
    training = spec.base.training
    if training.max_steps is not None or training.epochs != 1:
        key = "maxSteps" if training.max_steps is not None else "epochs"
        yield (
            ("base", "training", key),
            "the experiment sets each stage's length itself",
            "remove it and set spec.stages.stage1.steps / spec.stages.stage2.steps",
        )
    yield from _study_problems(spec)


def _study_problems(spec: ExperimentSpec) -> Iterator[tuple[tuple, str, str | None]]:
    study = spec.study
    wanted = _STUDY_PARAMS[study.type]
    given = {
        alias: value
        for alias, value in (
            ("taskCounts", study.task_counts),
            ("syntheticSamples", study.synthetic_samples),
            ("trainable", study.trainable),
        )
        if value is not None
    }
    for alias in given:
        if alias != wanted:
            yield (("study", alias), f"{study.type.value} does not use {alias}", "remove it")
    if wanted is not None and wanted not in given:
        yield (("study", wanted), f"{study.type.value} needs {wanted}", f"add it, e.g. `{wanted}: {_EXAMPLES[wanted]}`")
    if study.type is StudyType.mixed_vs_two_stage:
        g1, g2 = _global_batch(spec, spec.stages.stage1), _global_batch(spec, spec.stages.stage2)
        stage2_samples = spec.stages.stage2.steps * g2
        if stage2_samples % g1:
            yield (
                ("stages", "stage2", "steps"),
                f"stage 2 trains {stage2_samples} samples, not a whole number of the mixed arm's "
                f"global batches ({g1}): the two arms would not share one budget",
                f"make steps x globalBatchSize of stage 2 a multiple of {g1}",
            )
        for name, stage in (("stage1", spec.stages.stage1), ("stage2", spec.stages.stage2)):
            chosen = [
                key
                for key, value in (
                    ("tasks", stage.data.tasks),
                    ("taskCount", stage.data.task_count),
                    ("weights", stage.data.weights),
                )
                if value is not None
            ]
            for key in chosen:  # these name stage-specific tasks: applied to the union they would drop the other's
                yield (
                    ("stages", name, "data", key),
                    "the mixed arm trains on the union of both stages' data, "
                    f"where one stage's `{key}` would cut the other stage's tasks",
                    "restrict tasks in the sources instead (e.g. `demo: {tasks: [...]}`)",
                )
    listed = spec.stages.stage1.data.tasks
    for index, count in enumerate(study.task_counts or []):
        if listed is not None and count > len(listed):
            yield (
                ("study", f"taskCounts[{index}]"),
                f"{count} tasks asked for; spec.stages.stage1.data.tasks lists {len(listed)}",
                "list more task names, or drop `tasks` to draw tasks by count",
            )
    for alias, values in (
        ("taskCounts", study.task_counts),
        ("syntheticSamples", study.synthetic_samples),
        ("trainable", [tuple(parts) for parts in study.trainable or []]),
    ):
        if values and len(set(values)) != len(values):
            yield (("study", alias), "lists an arm twice", "list each value once")
    for index, parts in enumerate(study.trainable or []):
        if len(set(parts)) != len(parts):
            yield (("study", f"trainable[{index}]"), "lists a part twice", "list each part once")


# -------------------------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class Arm:
    """One named pipeline of an experiment."""

    name: str
    jobs: tuple[str, ...]
    """Its jobs in run order, shared ones included; the last is its EvalJob."""
    params: dict = field(default_factory=dict)
    """What distinguishes the arm, e.g. {"syntheticSamples": 500} or {"trainable": ["projector"]}."""

    @property
    def evaluation(self) -> str:
        return self.jobs[-1]


@dataclass(frozen=True)
class Expansion:
    """An experiment as ordinary jobs, and which arm each belongs to."""

    experiment: Experiment
    arms: tuple[Arm, ...]
    jobs: tuple[TuningJob | EvalJob, ...]
    """Every generated job once, in dependency order."""
    stages: dict[str, str]
    """Job name -> stage (stage1, stage2, train, eval)."""

    def job(self, name: str) -> TuningJob | EvalJob:
        return next(job for job in self.jobs if job.name == name)

    def budget(self, arm: Arm) -> int:
        """Training samples of an arm: the sum of steps x globalBatchSize over its TuningJobs."""
        return sum(
            job.spec.training.max_steps * job.spec.training.global_batch_size
            for job in map(self.job, arm.jobs)
            if isinstance(job, TuningJob)
        )

    def manifest(self) -> dict:
        """What the report needs to know about the arms, written as experiment.json in the run folder.

        Job folders are given relative to the experiment's output, so a copied or downloaded run folder
        still reports.
        """
        prefix = self.experiment.spec.output.uri + "/"
        return {
            "experiment": self.experiment.name,
            "study": self.experiment.spec.study.type.value,
            "arms": [
                {
                    "name": arm.name,
                    "params": arm.params,
                    "budgetSamples": self.budget(arm),
                    "jobs": [self._job_entry(name, prefix) for name in arm.jobs],
                }
                for arm in self.arms
            ],
        }

    def _job_entry(self, name: str, prefix: str) -> dict:
        job = self.job(name)
        entry = {
            "name": name,
            "kind": job.kind,
            "stage": self.stages[name],
            "path": job.spec.output.uri.removeprefix(prefix),
        }
        if isinstance(job, TuningJob):
            entry.update(steps=job.spec.training.max_steps, globalBatchSize=job.spec.training.global_batch_size)
        return entry


def child_name(experiment: str, arm: str, stage: str) -> str:
    """`<experiment>-<arm>-<stage>`, cut to a DNS label (63 characters) with a hash suffix that keeps it unique."""
    name = f"{experiment}-{arm}-{stage}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def arm_name(parts: list[TrainablePart]) -> str:
    return "-".join(part.value.replace("_", "-") for part in parts)


def expand(experiment: Experiment) -> Expansion:
    """The experiment's arms as TuningJob/EvalJob models (pure: the same experiment gives the same jobs).

    Raises:
        InvalidGeneratedJob: a generated job is invalid (names the job, each field path and the fix).
    """
    builder = _Builder(experiment)
    study = experiment.spec.study
    if study.type is StudyType.mixed_vs_two_stage:
        builder.two_stage("two-stage")
        builder.mixed("mixed")
    elif study.type is StudyType.task_scaling:
        for count in study.task_counts:
            builder.two_stage(f"tasks-{count}", stage1_data=builder.task_count_data(count), params={"tasks": count})
    elif study.type is StudyType.synthetic_scaling:
        shared = builder.stage1(SHARED_ARM)
        for samples in study.synthetic_samples:
            builder.synthetic(f"synthetic-{samples}", shared, samples)
    else:
        for parts in study.trainable:
            builder.two_stage(arm_name(parts), trainable=parts, params={"trainable": [p.value for p in parts]})
    return Expansion(experiment, tuple(builder.arms), tuple(builder.jobs), dict(builder.stages))


class _Builder:
    """Accumulates the generated documents; each method adds one arm or stage."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.spec = experiment.spec
        self.arms: list[Arm] = []
        self.jobs: list[TuningJob | EvalJob] = []
        self.stages: dict[str, str] = {}

    # -- arms

    def two_stage(
        self,
        arm: str,
        stage1_data: DataSpec | None = None,
        trainable: list[TrainablePart] | None = None,
        params: dict | None = None,
    ) -> None:
        first = self.stage1(arm, stage1_data, trainable)
        second = self.stage2(arm, first, trainable=trainable)
        self.arms.append(Arm(arm, (first, second, self.evaluation(arm, second)), params or {}))

    def mixed(self, arm: str) -> None:
        one, two = self.spec.stages.stage1, self.spec.stages.stage2
        # Same training samples as the two-stage arm, in one stage with stage 1's settings (checked divisible).
        samples = one.steps * _global_batch(self.spec, one) + two.steps * _global_batch(self.spec, two)
        caps = [one.data.max_samples, two.data.max_samples]
        union = one.data.model_copy(
            update={
                "sources": [*one.data.sources, *two.data.sources],
                # Both pools in full: their caps add up, and without a cap on each the union has none.
                "max_samples": sum(caps) if None not in caps else None,
            }
        )
        name = self.tuning(
            arm, "train", union, samples // _global_batch(self.spec, one), one.training, self.spec.base.model.to_doc()
        )
        self.arms.append(Arm(arm, (name, self.evaluation(arm, name))))

    def synthetic(self, arm: str, stage1: str, samples: int) -> None:
        jobs = [stage1]
        if samples:
            data = self.spec.stages.stage2.data.model_copy(update={"max_samples": samples})
            jobs.append(self.stage2(arm, stage1, data=data))
        self.arms.append(Arm(arm, (*jobs, self.evaluation(arm, jobs[-1])), {"syntheticSamples": samples}))

    # -- stages

    def stage1(self, arm: str, data: DataSpec | None = None, trainable: list[TrainablePart] | None = None) -> str:
        stage = self.spec.stages.stage1
        return self.tuning(
            arm,
            "stage1",
            data or stage.data,
            stage.steps,
            stage.training,
            self._model(self.spec.base.model.to_doc(), trainable),
        )

    def stage2(
        self, arm: str, upstream: str, data: DataSpec | None = None, trainable: list[TrainablePart] | None = None
    ) -> str:
        stage = self.spec.stages.stage2
        base = self.spec.base.model
        model = {
            "from": {"job": upstream},
            "projector": base.projector.value,
            "trainable": [part.value for part in base.trainable],
        }
        if base.lora is not None:  # stage 1's adapters are merged into its export; stage 2 trains fresh ones
            model["lora"] = base.lora.to_doc()
        return self.tuning(
            arm, "stage2", data or stage.data, stage.steps, stage.training, self._model(model, trainable)
        )

    def task_count_data(self, count: int) -> DataSpec:
        """Stage-1 data of a task-scaling arm: the fixed total spread over `count` tasks (N/k per task)."""
        stage = self.spec.stages.stage1
        data = stage.data
        chosen = {"tasks": data.tasks[:count]} if data.tasks is not None else {"task_count": count}
        return data.model_copy(update={**chosen, "max_samples": stage.steps * _global_batch(self.spec, stage)})

    def tuning(self, arm: str, stage: str, data: DataSpec, steps: int, changes: StageTraining, model: dict) -> str:
        training = {
            **self.spec.base.training.to_doc(),
            **changes.to_doc(),
            # maxSteps decides the length; epochs only has to be large enough never to cut it first.
            "maxSteps": steps,
            "epochs": steps,
        }
        spec = {
            "model": model,
            "data": data.to_doc(),
            "training": training,
            "resources": self.spec.resources.to_doc(),
            "output": {"uri": self._output(arm, stage)},
        }
        return self._add(TuningJob, arm, stage, spec)

    def evaluation(self, arm: str, upstream: str) -> str:
        evaluation = self.spec.evaluation
        spec = {
            "model": {"from": {"job": upstream}},
            "benchmarks": [b.to_doc() for b in evaluation.benchmarks],
            "generation": evaluation.generation.to_doc(),
            "resources": self.spec.resources.to_doc(),
            "output": {"uri": self._output(arm, "eval")},
        }
        if evaluation.judge is not None:
            spec["judge"] = evaluation.judge.to_doc()
        return self._add(EvalJob, arm, "eval", spec)

    # -- helpers

    def _add(self, model: type[TuningJob] | type[EvalJob], arm: str, stage: str, spec: dict) -> str:
        meta = self.experiment.metadata
        name = child_name(meta.name, arm, stage)
        metadata = {
            "name": name,
            "labels": {**meta.labels, EXPERIMENT_LABEL: meta.name, ARM_LABEL: arm},
            "annotations": dict(meta.annotations),
        }
        if meta.namespace:
            metadata["namespace"] = meta.namespace
        document = {"apiVersion": API_VERSION, "kind": model.__name__, "metadata": metadata, "spec": spec}
        try:
            job = model.model_validate(document)
        except ValidationError as err:
            raise InvalidGeneratedJob(name, issues_from_validation(err, model, name)) from None
        self.jobs.append(job)
        self.stages[name] = stage
        return name

    def _output(self, arm: str, stage: str) -> str:
        return f"{self.spec.output.uri}/{arm}/{stage}"

    @staticmethod
    def _model(model: dict, trainable: list[TrainablePart] | None) -> dict:
        if trainable is None:
            return model
        model = {**model, "trainable": [part.value for part in trainable]}
        if TrainablePart.language_model not in trainable:
            model.pop("lora", None)  # adapters live on the language model: an arm that freezes it has none
        return model


def _global_batch(spec: ExperimentSpec, stage: StageSpec) -> int:
    return stage.training.global_batch_size or spec.base.training.global_batch_size
