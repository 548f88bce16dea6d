"""Every kind of bad job file fails with the field path and a fix; good files load."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vlmtune.cli import main
from vlmtune.spec import SpecError, TuningJob, load_jobs

GOOD = """\
apiVersion: vlmtune.dev/v1alpha1
kind: TuningJob
metadata:
  name: stage1
spec:
  model: {preset: tiny}
  data:
    sources: [{demo: {perTask: 4}}]
  training: {globalBatchSize: 8, microBatchSize: 2}
  resources: {workers: 2}
  output: {uri: ./runs/stage1}
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def issues(tmp_path: Path, text: str) -> list:
    with pytest.raises(SpecError) as caught:
        load_jobs([write(tmp_path, text)])
    return caught.value.issues


def only(found: list, path: str):
    matching = [issue for issue in found if issue.path == path]
    assert matching, f"no issue at {path}: {[str(i) for i in found]}"
    return matching[0]


def test_good_file_loads_with_defaults(tmp_path):
    (job,) = load_jobs([write(tmp_path, GOOD)])
    assert isinstance(job, TuningJob)
    assert job.spec.training.learning_rate == 2.0e-5
    assert job.spec.training.deepspeed.zero_stage == 2
    assert job.spec.gradient_accumulation_steps == 2
    assert job.spec.model.trainable[0].value == "projector"


def test_wrong_type(tmp_path):
    issue = only(
        issues(tmp_path, GOOD.replace("globalBatchSize: 8", "globalBatchSize: eight")), "spec.training.globalBatchSize"
    )
    assert "integer" in issue.message and "'eight'" in issue.message


def test_misspelt_key_suggests_the_right_one(tmp_path):
    issue = only(issues(tmp_path, GOOD.replace("microBatchSize", "microBatchSise")), "spec.training.microBatchSise")
    assert issue.message == "unknown key 'microBatchSise'"
    assert issue.fix == "did you mean `microBatchSize`?"


def test_snake_case_key_is_unknown(tmp_path):
    issue = only(
        issues(tmp_path, GOOD.replace("globalBatchSize", "global_batch_size")), "spec.training.global_batch_size"
    )
    assert "globalBatchSize" in issue.fix


def test_unknown_key_lists_allowed_keys(tmp_path):
    issue = only(issues(tmp_path, GOOD.replace("workers: 2", "workers: 2, zzz: 1")), "spec.resources.zzz")
    assert "allowed keys here" in issue.fix and "gpusPerWorker" in issue.fix


def test_missing_field(tmp_path):
    issue = only(issues(tmp_path, GOOD.replace("  output: {uri: ./runs/stage1}\n", "")), "spec.output")
    assert issue.message == "required field is missing"
    assert "add `output`" in issue.fix


@pytest.mark.parametrize("name", ["Stage1", "stage_1", "-stage1", "x" * 64])
def test_bad_metadata_name(tmp_path, name):
    issue = only(issues(tmp_path, GOOD.replace("name: stage1", f"name: {name!r}")), "metadata.name")
    assert name[:20] in issue.message


def test_wrong_api_version_and_kind(tmp_path):
    found = issues(tmp_path, GOOD.replace("vlmtune.dev/v1alpha1", "vlmtune.dev/v1").replace("TuningJob", "TrainJob"))
    assert "vlmtune.dev/v1alpha1" in only(found, "apiVersion").fix
    assert "TuningJob" in only(found, "kind").fix


def test_missing_api_version(tmp_path):
    assert (
        only(issues(tmp_path, GOOD.replace("apiVersion: vlmtune.dev/v1alpha1\n", "")), "apiVersion").message
        == "missing"
    )


def test_empty_file(tmp_path):
    (issue,) = issues(tmp_path, "# nothing here\n")
    assert "no job" in issue.message


def test_unparsable_file_names_the_line(tmp_path):
    (issue,) = issues(tmp_path, GOOD.replace("  data:\n", "  data: [\n"))
    assert "not valid YAML" in issue.message and "line" in issue.message


def test_document_that_is_not_a_mapping(tmp_path):
    (issue,) = issues(tmp_path, "- just\n- a list\n")
    assert "expected a mapping" in issue.message


def test_batch_not_divisible(tmp_path):
    issue = only(
        issues(
            tmp_path,
            GOOD.replace("globalBatchSize: 8, microBatchSize: 2", "globalBatchSize: 100, microBatchSize: 3").replace(
                "workers: 2", "workers: 8"
            ),
        ),
        "spec.training.globalBatchSize",
    )
    assert issue.message == "100 is not divisible by workers x microBatchSize = 8 x 3 = 24"
    assert "96" in issue.fix and "120" in issue.fix


def test_fp16_without_gpus(tmp_path):
    issue = only(
        issues(tmp_path, GOOD.replace("microBatchSize: 2}", "microBatchSize: 2, precision: fp16}")),
        "spec.training.precision",
    )
    assert "gpusPerWorker" in issue.message


def test_model_named_two_ways(tmp_path):
    issue = only(
        issues(tmp_path, GOOD.replace("{preset: tiny}", "{preset: tiny, pretrained: /models/llava}")), "spec.model"
    )
    assert "exactly one way" in issue.message and "preset, pretrained" in issue.message


def test_enum_value(tmp_path):
    issue = only(
        issues(tmp_path, GOOD.replace("    sources:", "    mixture: random\n    sources:")), "spec.data.mixture"
    )
    assert "'uniform'" in issue.fix and "'proportional'" in issue.fix


def test_from_unknown_job(tmp_path):
    stage2 = GOOD.replace("name: stage1", "name: stage2").replace("{preset: tiny}", "{from: {job: stage-one}}")
    issue = only(issues(tmp_path, stage2), "spec.model.from.job")
    assert issue.message == "no job named 'stage-one' is defined"


STAGE2 = (
    GOOD.replace("name: stage1", "name: stage2")
    .replace("{preset: tiny}", "{from: {job: stage1}}")
    .replace("./runs/stage1", "./runs/stage2")
)


def test_from_known_job_across_documents(tmp_path):
    stage2 = STAGE2
    jobs = load_jobs([write(tmp_path, GOOD + "---\n" + stage2)])
    assert [job.name for job in jobs] == ["stage1", "stage2"]
    assert jobs[1].upstream_jobs() == ["stage1"]


def test_from_job_in_another_file(tmp_path):
    stage2 = STAGE2
    jobs = load_jobs([write(tmp_path, GOOD, "a.yaml"), write(tmp_path, stage2, "b.yaml")])
    assert len(jobs) == 2


def test_duplicate_names(tmp_path):
    found = issues(tmp_path, GOOD + "---\n" + GOOD)
    assert "used twice" in only(found, "metadata.name").message


def test_every_document_is_checked_and_located(tmp_path):
    found = issues(
        tmp_path, GOOD + "---\n" + GOOD.replace("name: stage1", "name: b").replace("workers: 2", "workers: 0")
    )
    issue = only(found, "spec.resources.workers")
    assert issue.source.endswith("(document 2)")


def test_overrides_apply_before_validation(tmp_path):
    (job,) = load_jobs([write(tmp_path, GOOD)], ["spec.training.maxSteps=3", "spec.output.uri=/tmp/x"])
    assert job.spec.training.max_steps == 3 and job.spec.output.uri == "/tmp/x"


def test_round_trip_to_document(tmp_path):
    (job,) = load_jobs([write(tmp_path, GOOD)])
    assert TuningJob.model_validate(job.to_doc()) == job
    assert "globalBatchSize" in job.to_doc()["spec"]["training"]


def test_cli_validate_exit_codes(tmp_path, capsys, repo):
    assert main(["validate", str(write(tmp_path, GOOD))]) == 0
    assert (
        main(
            [
                "validate",
                str(write(tmp_path, GOOD.replace("epochs", "epoch").replace("training: {", "training: {epoch: 1, "))),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "spec.training.epoch: unknown key 'epoch'" in err and "did you mean `epochs`?" in err


def test_every_shipped_job_file_validates(repo):
    files = sorted((repo / "jobs").glob("*.yaml"))
    assert files, "jobs/ is empty"
    names = [job.name for job in load_jobs(files)]  # together: references between files resolve
    for path in files:
        assert load_jobs([path], known=names), path


@pytest.mark.parametrize(
    "data, message",
    [
        ("mixture: weights, maxSamples: 10", "needs `weights"),
        ("mixture: weights, weights: {a: 1}", "needs `maxSamples`"),
        ("weights: {a: 1}", "only applies with `mixture: weights`"),
        ("tasks: [a], taskCount: 2", "not both"),
    ],
)
def test_mixture_settings_that_contradict_each_other(tmp_path, data, message):
    text = GOOD.replace(
        "    sources: [{demo: {perTask: 4}}]",
        f"    sources: [{{demo: {{perTask: 4}}}}]\n    {data.replace(', ', chr(10) + '    ')}",
    )
    issue = only(issues(tmp_path, text), "spec.data")
    assert message in issue.message
