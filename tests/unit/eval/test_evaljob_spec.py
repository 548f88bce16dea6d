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
        "    - {name: mc, data: x, limt: 3}",
    )
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
    assert "spec.benchmarks" in _issues(
        EVAL.replace(
            "  benchmarks:\n    - {name: mme, data: s3://bench/MME/data/}\n"
            "    - {name: heldout, demo: {heldoutPerTask: 4, tasks: [shape_name]}, limit: 2}\n",
            "  benchmarks: []\n",
        )
    )
    issues = _issues(EVAL.replace("heldoutPerTask: 4", "heldoutPerTask: 0"))
    assert "there would be none" in issues["spec.benchmarks[1].demo.heldoutPerTask"]


def test_the_shipped_eval_job_validates_and_uses_quickstarts_demo_suite(repo):
    (job,) = load_jobs([repo / "jobs" / "eval-demo.yaml"])
    quickstart = yaml.safe_load((repo / "jobs" / "quickstart.yaml").read_text())
    source = quickstart["spec"]["stages"]["stage1"]["data"]["sources"][0]["demo"]  # an Experiment's stage 1
    for bench in job.spec.benchmarks:
        # Same suite parameters as the training job: its held-out images were never trained on.
        assert (bench.demo.per_task, bench.demo.heldout_per_task, bench.demo.seed) == (
            source["perTask"],
            source["heldoutPerTask"],
            source["seed"],
        )


def test_the_crd_explains_every_field():
    spec = crd_for("EvalJob", EvalJob)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    bench = spec["properties"]["benchmarks"]["items"]["properties"]
    assert bench["name"]["enum"] == ["mme", "pope", "mc", "heldout", "forgetting", "llavabench", "mmvet", "mmmu"]
    assert "CircularEval" in bench["name"]["description"]
    assert spec["properties"]["generation"]["properties"]["maxNewTokens"]["default"] == 128


JUDGED = """
apiVersion: vlmtune.dev/v1alpha1
kind: EvalJob
metadata: {name: judged}
spec:
  model: {preset: tiny}
  benchmarks:
    - {name: llavabench, data: s3://bench/llava-bench-in-the-wild, maxNewTokens: 1024}
    - {name: mmvet, demo: {}}
    - {name: mmmu, data: s3://bench/MMMU}
  judge:
    endpoint: {url: "https://api.openai.com/v1", model: gpt-4-0613, apiKeySecret: {name: openai, key: api-key}}
    requestsPerMinute: 30
  output: {uri: ./runs/judged}
"""


def test_a_judged_eval_job_names_its_judge_and_the_key_stays_out_of_the_spec():
    (job,) = parse_documents(JUDGED, "judged.yaml")
    judge = job.spec.judge
    assert judge.identity() == "endpoint:https://api.openai.com/v1#gpt-4-0613"
    assert (judge.endpoint.api_key_env, judge.concurrency, judge.max_retries) == ("OPENAI_API_KEY", 4, 6)
    # What the operator adds to the Ray pods: the Secret's key as the environment variable the judge reads.
    assert judge.secret_env() == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}}
    ]
    assert job.spec.benchmarks[0].max_new_tokens == 1024
    # No field holds the key itself (an unknown key such as `apiKey` is rejected, see below).
    assert set(judge.endpoint.to_doc()) == {"url", "model", "apiKeyEnv", "apiKeySecret"}


def test_judged_benchmarks_need_a_judge_and_a_judge_is_one_thing():
    issues = _issues(
        JUDGED.replace(
            '  judge:\n    endpoint: {url: "https://api.openai.com/v1", model: gpt-4-0613, '
            "apiKeySecret: {name: openai, key: api-key}}\n    requestsPerMinute: 30\n",
            "",
        )
    )
    assert "llavabench is scored by a judge model" in issues["spec.benchmarks[0].name"]
    assert "mmvet is scored by a judge model" in issues["spec.benchmarks[1].name"]
    assert "spec.benchmarks[2].name" not in issues  # MMMU is scored by rules
    both = _issues(JUDGED.replace("requestsPerMinute: 30", "model: {preset: tiny}"))
    assert "exactly one of `endpoint" in both["spec.judge"]
    bad = _issues(
        JUDGED.replace('"https://api.openai.com/v1"', "api.openai.com").replace(
            "key: api-key}", "key: api-key}, apiKeyEnv: 1BAD"
        )
    )
    assert "spec.judge.endpoint.url" in bad and "spec.judge.endpoint.apiKeyEnv" in bad
    assert "spec.judge.endpoint.apiKey" in _issues(
        JUDGED.replace("apiKeySecret: {name: openai, key: api-key}", "apiKey: sk-123")
    )


def test_an_experiment_hands_its_judge_to_every_arms_eval_job(repo):
    from vlmtune.spec import Experiment, expand

    document = yaml.safe_load((repo / "jobs" / "quickstart.yaml").read_text())
    document["spec"]["evaluation"]["benchmarks"].append({"name": "llavabench", "demo": {}})
    with pytest.raises(Exception, match="llavabench is scored by a judge model"):
        Experiment.model_validate(document)
    document["spec"]["evaluation"]["judge"] = {"model": {"preset": "tiny", "maxNewTokens": 8}}
    evals = [job for job in expand(Experiment.model_validate(document)).jobs if isinstance(job, EvalJob)]
    assert len(evals) == 2 and all(job.spec.judge.identity() == "model:preset:tiny" for job in evals)
