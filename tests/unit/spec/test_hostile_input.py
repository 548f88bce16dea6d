"""Hostile and careless job files: each is one line per problem, naming the file and line or the field path,
in bounded time; nothing is echoed whole, nothing expands, nothing becomes a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vlmtune.cli import main
from vlmtune.spec import SpecError, load_jobs, parse_documents
from vlmtune.spec.yaml_reader import MAX_DEPTH

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
BOUND_S = 10.0  # every file below is answered in milliseconds (10 MB in about a second); room for a loaded machine


def problems(tmp_path: Path, content: str | bytes, overrides: tuple[str, ...] = ()) -> list:
    path = tmp_path / "job.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        load_jobs([path], overrides)
    assert time.monotonic() - started < BOUND_S
    for issue in caught.value.issues:
        assert "\n" not in str(issue) and len(str(issue)) < 1200, str(issue)[:300]
    return caught.value.issues


def at(found: list, path: str):
    matching = [issue for issue in found if issue.path == path]
    assert matching, f"no issue at {path}: {[str(i) for i in found]}"
    return matching[0]


def test_issue_prints_as_one_line_with_file_line_and_fix(tmp_path):
    (issue,) = problems(tmp_path, GOOD.replace("globalBatchSize: 8", "globalBatchSize: 9"))
    text = str(issue)
    assert text.startswith(f"{tmp_path / 'job.yaml'}:9: spec.training.globalBatchSize: 9 is not divisible")
    assert "; fix: use a multiple of 4" in text


def test_alias_bomb_is_refused_before_it_expands(tmp_path):
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    text = "\n".join(levels) + "\n" + GOOD.replace("name: stage1", "name: *i")
    assert len(text) < 1500
    (issue,) = problems(tmp_path, text)
    assert "once aliases are expanded" in issue.message and issue.line is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_is_one_line(tmp_path, depth):
    (issue,) = problems(tmp_path, GOOD + "  extra: " + "[" * depth + "]" * depth + "\n")
    assert "nest" in issue.message and issue.line == 12


def test_deep_block_nesting_is_one_line(tmp_path):
    block = "".join("  " * (level + 1) + f"k{level}:\n" for level in range(200))
    (issue,) = problems(tmp_path, GOOD + block + "  " * 201 + "v\n")
    assert f"more than {MAX_DEPTH} levels" in issue.message


def test_huge_value_is_previewed_not_echoed(tmp_path):
    (issue,) = problems(tmp_path, GOOD.replace("name: stage1", "name: " + "x" * 10_000_000))
    assert issue.path == "metadata.name" and "(10000000 characters)" in issue.message
    assert len(str(issue)) < 400


def test_huge_unknown_key_is_previewed(tmp_path):
    (issue,) = problems(tmp_path, GOOD.replace("  resources:", "  ? " + "k" * 100_000 + "\n  : 1\n  resources:"))
    assert len(str(issue)) < 600 and "unknown key" in issue.message


def test_not_utf8_names_the_line(tmp_path):
    (issue,) = problems(tmp_path, GOOD.encode().replace(b"stage1\n", b"st\xffage1\n", 1))
    assert "not UTF-8" in issue.message and "0xff" in issue.message and issue.line == 4


@pytest.mark.parametrize("kind", ["[TuningJob]", "{a: 1}", "42", "null"])
def test_kind_of_any_shape(tmp_path, kind):
    issue = at(problems(tmp_path, GOOD.replace("kind: TuningJob", f"kind: {kind}")), "kind")
    assert "TuningJob, EvalJob, Experiment" in issue.fix


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    text = GOOD.replace("  resources: {workers: 2}\n", "  resources: {workers: 2}\n  resources: {workers: 1}\n")
    (issue,) = problems(tmp_path, text)
    assert "duplicate key 'resources'" in issue.message and issue.line == 11


def test_duplicate_keys_in_flow_mappings(tmp_path):
    (issue,) = problems(tmp_path, GOOD.replace("{workers: 2}", "{workers: 2, workers: 4}"))
    assert "duplicate key 'workers'" in issue.message


def test_merge_keys_may_be_overridden(tmp_path):
    text = GOOD.replace("  resources: {workers: 2}", "  resources: {<<: {workers: 4}, workers: 2}")
    (job,) = load_jobs([_write(tmp_path, text)])
    assert job.spec.resources.workers == 2


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("learningRate", "true", "got the boolean true"),
        ("globalBatchSize", "yes", "got the boolean true"),
        ("epochs", "'3'", "got text '3'"),
        ("gradientClipping", ".inf", "not a finite number"),
        ("warmupRatio", ".nan", "not a finite number"),
        ("maxSteps", "3000000000", "int32"),
    ],
)
def test_numbers_must_be_numbers(tmp_path, field, value, expected):
    text = (
        GOOD.replace("globalBatchSize: 8,", f"globalBatchSize: 8, {field}: {value},")
        if field != "globalBatchSize"
        else GOOD.replace("globalBatchSize: 8", f"globalBatchSize: {value}")
    )
    issue = at(problems(tmp_path, text), f"spec.training.{field}")
    assert expected in issue.message


def test_numbers_in_lists_and_maps(tmp_path):
    text = GOOD.replace(
        "sources: [{demo: {perTask: 4}}]",
        "sources: [{demo: {perTask: 4}}]\n    mixture: weights\n    maxSamples: 8\n    weights: {shapes: true}",
    )
    assert "boolean" in at(problems(tmp_path, text), "spec.data.weights.shapes").message


def test_booleans_in_a_list_of_integers(repo, tmp_path):
    path = tmp_path / "scaling.yaml"
    path.write_text((repo / "jobs" / "scaling-tasks.yaml").read_text())
    with pytest.raises(SpecError) as caught:
        load_jobs([path], ["spec.study.taskCounts=[true, 2]"])
    assert "boolean" in at(caught.value.issues, "spec.study.taskCounts[0]").message


def test_exponent_without_a_dot_is_a_number_as_in_kubernetes(tmp_path):
    text = GOOD.replace("globalBatchSize: 8,", "globalBatchSize: 8, learningRate: 2e-5,")
    (job,) = load_jobs([_write(tmp_path, text)])
    assert job.spec.training.learning_rate == 2e-5


def test_impossible_step_counts(tmp_path):
    issue = at(
        problems(tmp_path, GOOD.replace("globalBatchSize: 8,", "epochs: 1e9, globalBatchSize: 8,")),
        "spec.training.epochs",
    )
    assert "maxSteps" in issue.fix
    issue = at(
        problems(tmp_path, GOOD.replace("globalBatchSize: 8,", "maxSteps: 2000000000, globalBatchSize: 8,")),
        "spec.training.maxSteps",
    )
    assert "samples" in issue.message


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("gs://bucket/run", "gs:// outputs are not supported"),
        ("hdfs://nn/run", "hdfs:// outputs are not supported"),
        ("s3:///run", "names no bucket"),
    ],
)
def test_only_local_and_s3_outputs(tmp_path, uri, expected):
    assert expected in at(problems(tmp_path, GOOD.replace("./runs/stage1", uri)), "spec.output.uri").message


@pytest.mark.parametrize(
    "labels, path",
    [
        ("{team: 'a b'}", "metadata.labels.team"),
        ("{team: " + "x" * 64 + "}", "metadata.labels.team"),
        ("{'Bad_Prefix.io/x': a}", "metadata.labels.Bad_Prefix.io/x"),
    ],
)
def test_label_limits(tmp_path, labels, path):
    at(problems(tmp_path, GOOD.replace("name: stage1", f"name: stage1\n  labels: {labels}")), path)


def test_two_jobs_one_output(tmp_path):
    second = GOOD.replace("name: stage1", "name: other")
    same_folder = second.replace("./runs/stage1", "runs/./stage1/")
    issue = at(problems(tmp_path, GOOD + "---\n" + same_folder), "spec.output.uri")
    assert "also the output of job 'stage1'" in issue.message


def test_two_jobs_one_output_after_experiment_expansion(tmp_path, repo):
    experiment = (repo / "jobs" / "quickstart.yaml").read_text()
    clash = GOOD.replace("name: stage1", "name: clash").replace("./runs/stage1", "./runs/quickstart/mixed/train")
    issue = at(problems(tmp_path, experiment + "\n---\n" + clash), "spec.output.uri")
    assert "quickstart-mixed-train" in issue.message


def test_dependency_cycle(tmp_path):
    a = GOOD.replace("{preset: tiny}", "{from: {job: b}}")
    b = (
        GOOD.replace("name: stage1", "name: b")
        .replace("{preset: tiny}", "{from: {job: stage1}}")
        .replace("runs/stage1", "runs/b")
    )
    (issue,) = problems(tmp_path, a + "---\n" + b)
    assert issue.message == "jobs form a cycle: stage1 -> b -> stage1"


def test_set_typo_is_blamed_on_the_override(tmp_path):
    found = problems(tmp_path, GOOD, ("spec.trainin.maxSteps=3", "spec.training.epochs=abc"))
    assert {issue.source for issue in found} == {"--set spec.trainin.maxSteps=3", "--set spec.training.epochs=abc"}
    assert "did you mean `training`" in at(found, "spec.trainin").fix


def test_set_value_that_is_not_yaml(tmp_path):
    (issue,) = problems(tmp_path, GOOD, ("spec.training.epochs=[[[",))
    assert issue.source == "--set spec.training.epochs=[[[" and "not valid YAML" in issue.message


def test_set_problem_is_reported_once_for_many_documents(tmp_path):
    text = GOOD + "---\n" + GOOD.replace("name: stage1", "name: b").replace("runs/stage1", "runs/b")
    (issue,) = problems(tmp_path, text, ("spec.training.epochs=0",))
    assert issue.source == "--set spec.training.epochs=0"


def test_spec_json_numbers_stay_numbers():
    (job,) = parse_documents(
        '{"apiVersion": "vlmtune.dev/v1alpha1", "kind": "TuningJob", "metadata": {"name": "a"}, '
        '"spec": {"model": {"preset": "tiny"}, "data": {"sources": [{"demo": {}}]}, '
        '"training": {"learningRate": 2e-05}, "output": {"uri": "/tmp/a"}}}',
        "--spec-json",
    )
    assert job.spec.training.learning_rate == 2e-05


def test_cli_prints_one_line_per_problem(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("workers: 2}", "workers: 0, zz: 1}").replace("preset: tiny", "preset: huge"))
    assert main(["validate", str(path)]) == 1
    header, *lines = capsys.readouterr().err.splitlines()
    assert header == "3 problem(s) found:" and len(lines) == 3
    assert all(line.startswith(f"  {path}:") and "; fix: " in line for line in lines)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path
