"""Planning a pipeline (pure): content hashes chained through upstream jobs, skip / run / restart decisions,
records; and a rerun of a finished experiment that skips everything without starting Ray."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from vlmtune import storage
from vlmtune.runners import pipeline
from vlmtune.runners.pipeline import (
    decide,
    expand_jobs,
    finished_record,
    job_steps,
    run_pipeline,
    running_record,
    spec_hash,
)
from vlmtune.spec import Experiment, TuningJob, expand
from vlmtune.spec.eval import EvalJob


def tuning(name: str, out: str, upstream: str | None = None, lr: float = 1e-3) -> TuningJob:
    model = {"from": {"job": upstream}} if upstream else {"preset": "tiny"}
    return TuningJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": name},
            "spec": {
                "model": model,
                "data": {"sources": [{"demo": {"perTask": 4}}]},
                "training": {"learningRate": lr, "globalBatchSize": 4, "microBatchSize": 2, "maxSteps": 2},
                "resources": {"workers": 2},
                "output": {"uri": out},
            },
        }
    )


def evaluation(name: str, out: str, upstream: str) -> EvalJob:
    return EvalJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "EvalJob",
            "metadata": {"name": name},
            "spec": {
                "model": {"from": {"job": upstream}},
                "benchmarks": [{"name": "pope", "demo": {}, "limit": 2}],
                "output": {"uri": out},
            },
        }
    )


@pytest.fixture
def chain(tmp_path):
    return [
        tuning("s1", str(tmp_path / "s1")),
        tuning("s2", str(tmp_path / "s2"), upstream="s1"),
        evaluation("ev", str(tmp_path / "ev"), upstream="s2"),
    ]


def succeeded(steps) -> dict[str, dict]:
    return {step.job.name: {**running_record(step, "t0"), "phase": "Succeeded"} for step in steps}


def test_hash_is_stable_and_covers_the_spec():
    one, same, other = tuning("a", "/r/a"), tuning("a", "/r/a"), tuning("a", "/r/a", lr=2e-3)
    assert spec_hash(one, {}) == spec_hash(same, {})
    assert spec_hash(one, {}) != spec_hash(other, {})
    assert len(spec_hash(one, {})) == 64


def test_hash_resolves_the_upstream_model_and_includes_its_hash():
    down = tuning("b", "/r/b", upstream="a")
    base = spec_hash(down, {"a": ("/r/a/model", "h1")})
    assert base != spec_hash(down, {"a": ("/r/a/model", "h2")})  # a changed upstream invalidates downstream
    assert base != spec_hash(down, {"a": ("/elsewhere/model", "h1")})


@pytest.mark.parametrize(
    "record, force, action",
    [
        (None, False, "run"),
        ({"specHash": "h", "phase": "Succeeded"}, False, "skip"),
        ({"specHash": "h", "phase": "Running"}, False, "run"),  # interrupted: resume from its checkpoint
        ({"specHash": "other", "phase": "Succeeded"}, False, "restart"),
        ({"specHash": "h", "phase": "Succeeded"}, True, "restart"),
    ],
)
def test_decide(record, force, action):
    assert decide(record, "h", force)[0] == action


def test_first_plan_runs_everything_in_dependency_order(chain):
    steps = job_steps(list(reversed(chain)), {})
    assert [(step.job.name, step.action) for step in steps] == [("s1", "run"), ("s2", "run"), ("ev", "run")]
    assert steps[1].upstreams == {"s1": steps[0].spec_hash}


def test_finished_jobs_are_skipped_and_a_missing_record_reruns_only_that_job(chain):
    records = succeeded(job_steps(chain, {}))
    assert {step.action for step in job_steps(chain, records)} == {"skip"}
    del records["s2"]
    assert [step.action for step in job_steps(chain, records)] == ["skip", "run", "skip"]


def test_a_changed_upstream_restarts_everything_below_it(chain, tmp_path):
    records = succeeded(job_steps(chain, {}))
    changed = [tuning("s1", str(tmp_path / "s1"), lr=5e-4), *chain[1:]]
    assert [step.action for step in job_steps(changed, records)] == ["restart"] * 3


def test_force_restarts_every_job(chain):
    records = succeeded(job_steps(chain, {}))
    assert {step.action for step in job_steps(chain, records, force=True)} == {"restart"}


def test_an_upstream_outside_the_set_is_an_error(chain):
    with pytest.raises(ValueError, match="'s1' is not among the jobs being run"):
        job_steps(chain[1:], {})


def test_expanding_twice_the_same_experiment_is_a_name_clash():
    doc = _experiment_doc("/tmp/x")
    with pytest.raises(ValueError, match="used twice"):
        expand_jobs([Experiment.model_validate(doc)] * 2)


@dataclass
class FakeTrainResult:
    job: str = "s1"
    output_uri: str = "/r/s1"
    model_uri: str = "/r/s1/model"
    steps: int = 2
    history: list = field(default_factory=lambda: [{"step": 1, "loss": 9.0}, {"step": 2, "loss": 7.5}])
    data_report: dict = field(default_factory=lambda: {"samples": 52})


@dataclass
class FakeEvalResult:
    headline: dict = field(default_factory=lambda: {"pope.f1": 0.4, "pope.yesRatio": 0.9})
    files: dict = field(
        default_factory=lambda: {
            "results": "/r/ev/results.json",
            "markdown": "/r/ev/results.md",
            "predictions:pope": "/r/ev/predictions/pope.jsonl",
        }
    )


def test_records_carry_artifacts_and_headline_metrics(chain):
    steps = job_steps(chain, {})
    train = finished_record(running_record(steps[0], "t0"), FakeTrainResult(), "t1")
    assert train["phase"] == "Succeeded" and train["specHash"] == steps[0].spec_hash and train["finishedAt"] == "t1"
    assert train["artifacts"]["model"] == "/r/s1/model"
    assert train["metrics"] == {"steps": 2, "samples": 52, "loss.first": 9.0, "loss.final": 7.5}
    evaluated = finished_record(running_record(steps[2], "t0"), FakeEvalResult(), "t1")
    assert evaluated["metrics"] == {"pope.f1": 0.4, "pope.yesRatio": 0.9}
    assert set(evaluated["artifacts"]) == {"results", "markdown"}
    assert evaluated["upstreams"] == {"s2": steps[1].spec_hash}


def _experiment_doc(out: str) -> dict:
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "mini"},
        "spec": {
            "study": {"type": "mixed-vs-two-stage"},
            "base": {"model": {"preset": "tiny"}, "training": {"globalBatchSize": 4, "microBatchSize": 2}},
            "stages": {
                "stage1": {"steps": 2, "data": {"sources": [{"demo": {"perTask": 4}}]}},
                "stage2": {"steps": 1, "data": {"sources": [{"demo": {"perTask": 4, "seed": 1}}]}},
            },
            "evaluation": {"benchmarks": [{"name": "pope", "demo": {}, "limit": 2}]},
            "resources": {"workers": 2},
            "output": {"uri": out},
        },
    }


def test_rerun_of_a_finished_experiment_skips_everything_without_ray_and_reports(tmp_path, monkeypatch):
    experiment = Experiment.model_validate(_experiment_doc(str(tmp_path / "mini")))
    jobs = expand(experiment).jobs
    for step in job_steps(list(jobs), {}):  # what a finished run leaves: one Succeeded record per job
        record = {
            **running_record(step, "t0"),
            "phase": "Succeeded",
            "finishedAt": "t1",
            "metrics": {"loss.final": 1.0} if isinstance(step.job, TuningJob) else {"pope.f1": 0.5},
        }
        pipeline.write_json(pipeline.record_uri(step.job), record)

    def no_ray(*_, **__):
        raise AssertionError("a pipeline with nothing to run must not start Ray")

    monkeypatch.setattr("vlmtune.runners.local.ray_session", no_ray)
    result = run_pipeline([experiment], show_progress=False)
    assert [outcome.result for outcome in result.outcomes] == [None] * 5
    assert all(outcome.step.action == "skip" for outcome in result.outcomes)
    summary = json.loads(storage.read_bytes(result.reports["mini"]["summary"]))
    assert [arm["complete"] for arm in summary["arms"]] == [True, True]
    assert (tmp_path / "mini" / "experiment.json").exists() and (tmp_path / "mini" / "report.md").exists()


def test_hash_ignores_the_worker_count():
    """A job resumed with more or fewer workers (or made elastic) continues its run: same plan, same global batch."""
    one = tuning("a", "/r/a")
    doc = one.to_doc()
    doc["spec"]["resources"] = {"workers": 1, "elastic": {"minWorkers": 1, "maxWorkers": 2}}
    assert spec_hash(one, {}) == spec_hash(type(one).model_validate(doc), {})
