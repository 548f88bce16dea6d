"""`spec.resources.elastic`: bounds, the start count inside them, and a global batch that splits at every size."""

from __future__ import annotations

import textwrap

from spec_issues import raised_issue

from vlmtune.spec import load_jobs

JOB = """\
apiVersion: vlmtune.dev/v1alpha1
kind: TuningJob
metadata: {{name: elastic}}
spec:
  model: {{preset: tiny}}
  data: {{sources: [{{demo: {{perTask: 4}}}}]}}
  training: {{globalBatchSize: {batch}, microBatchSize: 2{zero}}}
  resources: {{workers: {workers}, elastic: {{minWorkers: {low}, maxWorkers: {high}}}}}
  output: {{uri: ./runs/elastic}}
"""


def load(tmp_path, batch=24, workers=2, low=1, high=4, zero=""):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(JOB.format(batch=batch, workers=workers, low=low, high=high, zero=zero)))
    return load_jobs([path])


def issue_at(tmp_path, path, **kwargs):
    return raised_issue(path, load, tmp_path, **kwargs)


def test_elastic_job_loads_and_round_trips(tmp_path):
    (job,) = load(tmp_path)
    assert job.spec.resources.elastic.min_workers == 1 and job.spec.resources.elastic.max_workers == 4
    assert list(job.spec.resources.world_sizes()) == [1, 2, 3, 4]
    assert job.to_doc()["spec"]["resources"]["elastic"] == {"minWorkers": 1, "maxWorkers": 4}
    assert job.spec.gradient_accumulation_steps == 6  # 24 / (2 workers to start x 2)


def test_global_batch_must_split_at_every_world_size(tmp_path):
    issue = issue_at(tmp_path, "spec.training.globalBatchSize", batch=16, low=1, high=4)
    assert "for W = 3" in issue.message and "[1, 4]" in issue.message
    assert "multiple of 24" in issue.fix  # lcm(2, 4, 6, 8)
    assert not [w for w in range(1, 5) if 24 % (w * 2)]


def test_max_below_min_names_max_workers(tmp_path):
    issue = issue_at(tmp_path, "spec.resources.elastic.maxWorkers", low=3, high=2, workers=3)
    assert "below elastic.minWorkers (3)" in issue.message


def test_start_count_must_lie_in_the_range(tmp_path):
    issue = issue_at(tmp_path, "spec.resources.workers", workers=5)
    assert "outside elastic [1, 4]" in issue.message


def test_zero3_cannot_be_elastic(tmp_path):
    issue = issue_at(tmp_path, "spec.resources.elastic", zero=", deepspeed: {zeroStage: 3}")
    assert "ZeRO-3" in issue.message and "zeroStage 0, 1 or 2" in issue.fix
