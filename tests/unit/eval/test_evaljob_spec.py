"""The EvalJob kind: defaults, chaining, and errors that name the field path and the fix."""

from __future__ import annotations

import pytest
import yaml

from vlmtune.spec import KINDS, EvalJob, SpecError, load_jobs, parse_documents
from vlmtune.spec.crd import crd_for

EVAL = """
apiVersion: vlmtune.dev/v1alpha1
kind: EvalJob
metadata: {name: ev}
spec:
  model: {from: {job: stage1}}
  benchmarks:
    - {name: mme, data: s3://bench/MME/data/}
    - {name: heldout, demo: {heldoutPerTask: 4, tasks: [shape_name]}, limit: 2}
  output: {uri: ./runs/ev}
"""
STAGE1 = """
apiVersion: vlmtune.dev/v1alpha1
kind: TuningJob
metadata: {name: stage1}
spec:
  model: {preset: tiny}
  data: {sources: [{demo: {}}]}
  output: {uri: ./runs/stage1}
"""


def _issues(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_documents(text, "job.yaml")
    return {issue.path: f"{issue.message} | {issue.fix}" for issue in caught.value.issues}


def test_an_eval_job_after_its_stage_loads_with_defaults():
    jobs = parse_documents(STAGE1 + "---" + EVAL, "pipeline.yaml")
    job = jobs[1]
    assert isinstance(job, EvalJob) and job.upstream_jobs() == ["stage1"]
    generation = job.spec.generation
    assert (generation.max_new_tokens, generation.batch_size, job.spec.resources.workers) == (128, 8, 1)
    assert job.spec.benchmarks[1].demo.tasks == ["shape_name"]
    assert "EvalJob" in KINDS


def test_reference_to_an_unknown_job_is_reported():
    assert "no job named 'stage1'" in _issues(EVAL)["spec.model.from.job"]


def test_field_paths_name_each_problem():
    bad = EVAL.replace("{from: {job: stage1}}", "{preset: tiny, pretrained: x}").replace(
        "- {name: heldout, demo: {heldoutPerTask: 4, tasks: [shape_name]}, limit: 2}",
        "- {name: pope, demo: {tasks: [shape_name]}, images: ./img}\n"
        "    - {name: pope, data: x, demo: {}}\n"
        "    - {name: bleu, data: x}\n"
        "    - {name: mc, data: x, limt: 3}")
    issues = _issues(bad)
    assert "exactly one way" in issues["spec.model"]
    assert "only a heldout benchmark" in issues["spec.benchmarks[1].images"]
    assert "built from fixed demo tasks" in issues["spec.benchmarks[1].demo.tasks"]
    assert "exactly one of `data: URI` or `demo: {}`" in issues["spec.benchmarks[2]"]
    assert "'bleu' is not allowed" in issues["spec.benchmarks[3].name"]
    assert "did you mean `limit`?" in issues["spec.benchmarks[4].limt"]


def test_a_benchmark_listed_twice_is_reported_at_its_second_place():
    issues = _issues(STAGE1 + "---" + EVAL.replace("name: heldout", "name: mme").replace(", tasks: [shape_name]", ""))
    assert "mme is already listed at benchmarks[0]" in issues["spec.benchmarks[1].name"]


def test_empty_benchmarks_and_zero_heldout_are_rejected():
    assert "spec.benchmarks" in _issues(EVAL.replace(
        "  benchmarks:\n    - {name: mme, data: s3://bench/MME/data/}\n"
        "    - {name: heldout, demo: {heldoutPerTask: 4, tasks: [shape_name]}, limit: 2}\n", "  benchmarks: []\n"))
    issues = _issues(EVAL.replace("heldoutPerTask: 4", "heldoutPerTask: 0"))
    assert "there would be none" in issues["spec.benchmarks[1].demo.heldoutPerTask"]


def test_the_shipped_eval_job_validates_and_uses_quickstarts_demo_suite(repo):
    job, = load_jobs([repo / "jobs" / "eval-demo.yaml"])
    quickstart = yaml.safe_load((repo / "jobs" / "quickstart.yaml").read_text())
    source = quickstart["spec"]["stages"]["stage1"]["data"]["sources"][0]["demo"]  # an Experiment's stage 1
    for bench in job.spec.benchmarks:
        # Same suite parameters as the training job: its held-out images were never trained on.
        assert (bench.demo.per_task, bench.demo.heldout_per_task, bench.demo.seed) == (
            source["perTask"], source["heldoutPerTask"], source["seed"])


def test_the_crd_explains_every_field():
    spec = crd_for("EvalJob", EvalJob)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    bench = spec["properties"]["benchmarks"]["items"]["properties"]
    assert bench["name"]["enum"] == ["mme", "pope", "mc", "heldout", "forgetting"]
    assert "CircularEval" in bench["name"]["description"]
    assert spec["properties"]["generation"]["properties"]["maxNewTokens"]["default"] == 128
