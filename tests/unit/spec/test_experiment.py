"""The Experiment kind: validation with field paths, and its expansion into ordinary jobs (pure)."""

from __future__ import annotations

import copy

import pytest
import yaml

from vlmtune.spec import EvalJob, Experiment, SpecError, TuningJob, expand, load_jobs
from vlmtune.spec.experiment import ARM_LABEL, EXPERIMENT_LABEL, child_name

TASKS = ["shape_name", "shape_color", "dot_count", "shape_position", "object_existence"]


def experiment_doc(study: dict | None = None, name: str = "study", **spec) -> dict:
    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": "team-vision", "labels": {"kueue.x-k8s.io/queue-name": "tuning"}},
        "spec": {
            "study": study or {"type": "mixed-vs-two-stage"},
            "base": {
                "model": {"preset": "tiny"},
                "training": {"learningRate": 1.0e-3, "globalBatchSize": 16, "microBatchSize": 8},
            },
            "stages": {
                "stage1": {"steps": 10, "data": {"sources": [{"demo": {"perTask": 32, "tasks": TASKS}}]}},
                "stage2": {
                    "steps": 4,
                    "data": {"sources": [{"demo": {"perTask": 8, "seed": 1}}]},
                    "training": {"learningRate": 5.0e-4, "globalBatchSize": 8, "microBatchSize": 4},
                },
            },
            "evaluation": {"benchmarks": [{"name": "pope", "demo": {}, "limit": 4}]},
            "resources": {"workers": 2},
            "output": {"uri": "./runs/study"},
        },
    }
    doc["spec"].update(spec)
    return doc


def build(doc: dict) -> Experiment:
    return Experiment.model_validate(doc)


def issues(tmp_path, doc: dict) -> dict[str, str]:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as caught:
        load_jobs([path])
    return {issue.path: f"{issue.message} | fix: {issue.fix}" for issue in caught.value.issues}


def test_mixed_vs_two_stage_expands_into_chained_jobs_with_derived_names_and_outputs():
    expansion = expand(build(experiment_doc()))
    assert [(job.kind, job.name, job.spec.output.uri, job.upstream_jobs()) for job in expansion.jobs] == [
        ("TuningJob", "study-two-stage-stage1", "./runs/study/two-stage/stage1", []),
        ("TuningJob", "study-two-stage-stage2", "./runs/study/two-stage/stage2", ["study-two-stage-stage1"]),
        ("EvalJob", "study-two-stage-eval", "./runs/study/two-stage/eval", ["study-two-stage-stage2"]),
        ("TuningJob", "study-mixed-train", "./runs/study/mixed/train", []),
        ("EvalJob", "study-mixed-eval", "./runs/study/mixed/eval", ["study-mixed-train"]),
    ]
    assert [(arm.name, arm.evaluation) for arm in expansion.arms] == [
        ("two-stage", "study-two-stage-eval"),
        ("mixed", "study-mixed-eval"),
    ]
    stage2 = expansion.job("study-two-stage-stage2")
    assert stage2.spec.training.learning_rate == 5.0e-4 and stage2.spec.training.global_batch_size == 8
    assert stage2.spec.training.max_steps == 4
    mixed = expansion.job("study-mixed-train")
    # One stage on the union of both stages' data, with stage 1's settings, for the same training samples.
    assert [source.demo.seed for source in mixed.spec.data.sources] == [0, 1]
    assert mixed.spec.training.learning_rate == 1.0e-3 and mixed.spec.training.global_batch_size == 16
    assert mixed.spec.training.max_steps == 10 + 4 * 8 // 16
    assert expansion.budget(expansion.arms[0]) == expansion.budget(expansion.arms[1]) == 10 * 16 + 4 * 8


def test_generated_jobs_inherit_namespace_and_labels_and_are_marked():
    for job in expand(build(experiment_doc())).jobs:
        assert job.metadata.namespace == "team-vision"
        assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "tuning"
        assert job.metadata.labels[EXPERIMENT_LABEL] == "study"
        assert job.metadata.labels[ARM_LABEL] in ("two-stage", "mixed")


def test_maxsteps_decides_every_stage_length():
    # epochs only bounds the plan; it must never cut a stage shorter than its steps.
    for job in expand(build(experiment_doc())).jobs:
        if isinstance(job, TuningJob):
            assert job.spec.training.epochs >= job.spec.training.max_steps


def test_task_scaling_spreads_one_total_over_k_tasks_drawn_by_count():
    expansion = expand(build(experiment_doc({"type": "task-scaling", "taskCounts": [2, 5]})))
    assert [arm.name for arm in expansion.arms] == ["tasks-2", "tasks-5"]
    for arm, count in zip(expansion.arms, (2, 5)):
        data = expansion.job(arm.jobs[0]).spec.data
        assert (data.task_count, data.tasks, data.max_samples) == (count, None, 10 * 16)  # N/k per task
        assert arm.params == {"tasks": count}
        assert expansion.job(arm.jobs[1]).spec.data.task_count is None  # stage 2 is the same for every arm
    assert len({expansion.budget(arm) for arm in expansion.arms}) == 1


def test_task_scaling_takes_the_first_k_listed_task_names():
    doc = experiment_doc({"type": "task-scaling", "taskCounts": [3]})
    doc["spec"]["stages"]["stage1"]["data"]["tasks"] = TASKS
    data = expand(build(doc)).job("study-tasks-3-stage1").spec.data
    assert (data.tasks, data.task_count) == (TASKS[:3], None)


def test_synthetic_scaling_shares_stage1_and_varies_the_stage2_data():
    study = {"type": "synthetic-scaling", "syntheticSamples": [0, 16, 64]}
    expansion = expand(build(experiment_doc(study)))
    assert [arm.jobs for arm in expansion.arms] == [
        ("study-shared-stage1", "study-synthetic-0-eval"),
        ("study-shared-stage1", "study-synthetic-16-stage2", "study-synthetic-16-eval"),
        ("study-shared-stage1", "study-synthetic-64-stage2", "study-synthetic-64-eval"),
    ]
    assert [job.name for job in expansion.jobs].count("study-shared-stage1") == 1
    assert expansion.job("study-synthetic-64-stage2").spec.data.max_samples == 64
    budgets = [expansion.budget(arm) for arm in expansion.arms]
    assert budgets[0] == 10 * 16 and budgets[1] == budgets[2] == 10 * 16 + 4 * 8  # stage-2 steps fixed


def test_trainable_ablation_freezes_the_same_parts_in_both_stages():
    study = {
        "type": "trainable-ablation",
        "trainable": [["projector"], ["language_model"], ["projector", "language_model"]],
    }
    expansion = expand(build(experiment_doc(study)))
    assert [arm.name for arm in expansion.arms] == ["projector", "language-model", "projector-language-model"]
    for arm in expansion.arms:
        parts = [[part.value for part in expansion.job(name).spec.model.trainable] for name in arm.jobs[:2]]
        assert parts == [arm.params["trainable"]] * 2
    assert len({expansion.budget(arm) for arm in expansion.arms}) == 1


def test_lora_carries_into_stage_two_and_is_dropped_by_arms_that_freeze_the_language_model():
    doc = experiment_doc({"type": "trainable-ablation", "trainable": [["projector"], ["projector", "language_model"]]})
    doc["spec"]["base"]["model"]["lora"] = {"rank": 4}
    expansion = expand(build(doc))
    frozen, adapted = expansion.arms
    assert [expansion.job(name).spec.model.lora for name in frozen.jobs[:2]] == [None, None]
    assert [expansion.job(name).spec.model.lora.rank for name in adapted.jobs[:2]] == [4, 4]


def test_mixed_vs_two_stage_trains_fresh_adapters_in_stage_two():
    doc = experiment_doc()
    doc["spec"]["base"]["model"]["lora"] = {"rank": 4}
    expansion = expand(build(doc))
    assert expansion.job("study-two-stage-stage2").spec.model.lora.rank == 4


def test_expansion_is_pure_and_every_name_is_a_dns_label():
    long_name = "a" * 60
    first, second = (expand(build(experiment_doc(name=long_name))) for _ in range(2))
    assert [job.to_doc() for job in first.jobs] == [job.to_doc() for job in second.jobs]
    names = [job.name for job in first.jobs]
    assert all(len(name) <= 63 for name in names) and len(set(names)) == len(names)
    assert child_name("q", "two-stage", "eval") == "q-two-stage-eval"


def test_manifest_names_job_folders_relative_to_the_run_folder():
    manifest = expand(build(experiment_doc())).manifest()
    assert manifest["study"] == "mixed-vs-two-stage"
    two_stage = manifest["arms"][0]
    assert two_stage["budgetSamples"] == 192
    assert two_stage["jobs"][0] == {
        "name": "study-two-stage-stage1",
        "kind": "TuningJob",
        "stage": "stage1",
        "path": "two-stage/stage1",
        "steps": 10,
        "globalBatchSize": 16,
    }
    assert two_stage["jobs"][2] == {
        "name": "study-two-stage-eval",
        "kind": "EvalJob",
        "stage": "eval",
        "path": "two-stage/eval",
    }


def test_study_parameters_must_match_the_study_type(tmp_path):
    found = issues(tmp_path, experiment_doc({"type": "task-scaling", "syntheticSamples": [1]}))
    assert "needs taskCounts" in found["spec.study.taskCounts"] and "[10, 13]" in found["spec.study.taskCounts"]
    assert "does not use syntheticSamples" in found["spec.study.syntheticSamples"]


def test_the_expansion_owns_stage_lengths(tmp_path):
    doc = experiment_doc()
    doc["spec"]["base"]["training"]["maxSteps"] = 5
    found = issues(tmp_path, doc)
    assert "spec.stages.stage1.steps" in found["spec.base.training.maxSteps"]


def test_mixed_arm_budget_must_be_whole_batches(tmp_path):
    doc = experiment_doc()
    doc["spec"]["stages"]["stage2"]["steps"] = 3  # 3 x 8 = 24 samples: not whole batches of 16
    found = issues(tmp_path, doc)
    assert "not a whole number of the mixed arm's global batches (16)" in found["spec.stages.stage2.steps"]


def test_task_counts_cannot_exceed_the_listed_tasks(tmp_path):
    doc = experiment_doc({"type": "task-scaling", "taskCounts": [3, 9]})
    doc["spec"]["stages"]["stage1"]["data"]["tasks"] = TASKS
    assert "9 tasks asked for" in issues(tmp_path, doc)["spec.study.taskCounts[1]"]


def test_mixed_study_rejects_stage_task_filters_that_would_cut_the_union(tmp_path):
    doc = experiment_doc()
    doc["spec"]["stages"]["stage2"]["data"]["taskCount"] = 3
    assert "would cut the other stage's tasks" in issues(tmp_path, doc)["spec.stages.stage2.data.taskCount"]


def test_invalid_generated_job_is_reported_with_its_name_and_path(tmp_path):
    doc = experiment_doc()
    doc["spec"]["stages"]["stage2"]["training"]["globalBatchSize"] = 12  # not divisible by 2 workers x 4
    doc["spec"]["stages"]["stage2"]["steps"] = 4  # 48 samples: 3 whole mixed batches
    (message,) = issues(tmp_path, doc).values()
    assert message.startswith(
        "generated job study-two-stage-stage2: spec.training.globalBatchSize: 12 is not divisible"
    )


def test_experiments_start_from_a_model_not_a_job(tmp_path):
    doc = experiment_doc()
    doc["spec"]["base"]["model"] = {"from": {"job": "elsewhere"}}
    assert "every arm starts from the same model" in issues(tmp_path, doc)["spec.base.model.from"]


def test_shipped_experiments_expand_with_equal_budgets(repo):
    experiments = [job for job in load_jobs(sorted((repo / "jobs").glob("*.yaml"))) if isinstance(job, Experiment)]
    assert {job.name for job in experiments} >= {"quickstart", "visionflan-mixed-vs-2s", "visionflan-task-scaling"}
    for experiment in experiments:
        expansion = expand(experiment)
        assert isinstance(expansion.jobs[-1], EvalJob)
        assert len({expansion.budget(arm) for arm in expansion.arms}) == 1, experiment.name


def test_round_trip_through_the_document_form():
    experiment = build(experiment_doc())
    assert Experiment.model_validate(copy.deepcopy(experiment.to_doc())) == experiment
