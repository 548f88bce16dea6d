"""How a pipeline ends early: another run holds an output (refused before anything is written), a stop request
(the job's record says Interrupted with the step to resume from), a failure (Failed, with the error's first
line); either way leases are released and a rerun continues the job."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from vlmtune.runners import pipeline
from vlmtune.runners.lease import Lease, LeaseHeld
from vlmtune.runners.pipeline import decide, run_pipeline
from vlmtune.spec import TuningJob
from vlmtune.spec.layout import LEASE
from vlmtune.train.stop import RunInterrupted, StopRequested, StopSwitch


def tuning(name: str, out: str, upstream: str | None = None) -> TuningJob:
    model = {"from": {"job": upstream}} if upstream else {"preset": "tiny"}
    return TuningJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": name},
            "spec": {
                "model": model,
                "data": {"sources": [{"demo": {"perTask": 4}}]},
                "training": {"globalBatchSize": 4, "microBatchSize": 2, "maxSteps": 2},
                "resources": {"workers": 2},
                "output": {"uri": out},
            },
        }
    )


@pytest.fixture
def chain(tmp_path):
    return [tuning("s1", str(tmp_path / "s1")), tuning("s2", str(tmp_path / "s2"), upstream="s1")]


@pytest.fixture
def no_ray(monkeypatch):
    @contextmanager
    def session(*_, **__):
        yield

    monkeypatch.setattr("vlmtune.runners.local.ray_session", session)


def training_that(monkeypatch, error: BaseException):
    def run(job, *_, **__):
        raise error

    monkeypatch.setattr("vlmtune.train.trainer.run_tuning_job", run)


def record(tmp_path, name: str) -> dict:
    return json.loads((tmp_path / name / "job.json").read_text())


def test_an_output_held_by_another_run_is_refused_before_anything_is_written(chain, tmp_path, monkeypatch):
    def ray_session(*_, **__):
        raise AssertionError("refused runs must not start Ray")

    monkeypatch.setattr("vlmtune.runners.local.ray_session", ray_session)
    with Lease(str(tmp_path / "s2"), "s2"), pytest.raises(LeaseHeld, match="job s2"):
        run_pipeline(chain, show_progress=False)
    assert not (tmp_path / "s1" / "job.json").exists() and not (tmp_path / "s1" / LEASE).exists()


def test_an_interrupted_job_records_where_it_resumes_and_releases_its_leases(chain, tmp_path, monkeypatch, no_ray):
    training_that(monkeypatch, RunInterrupted("s1", "SIGTERM", 6, checkpointed=True))
    with pytest.raises(RunInterrupted):
        run_pipeline(chain, show_progress=False)
    interrupted = record(tmp_path, "s1")
    assert interrupted["phase"] == "Interrupted" and interrupted["resumeStep"] == 6
    assert "SIGTERM" in interrupted["reason"] and interrupted["finishedAt"]
    assert not (tmp_path / "s2" / "job.json").exists()
    assert not list(tmp_path.glob(f"*/{LEASE}"))
    assert decide(interrupted, interrupted["specHash"], force=False)[0] == "run"  # rerunning continues it


def test_a_failed_job_records_the_first_line_of_its_error(chain, tmp_path, monkeypatch, no_ray):
    training_that(monkeypatch, ValueError("spec.training.epochs: too many\nsecond line"))
    with pytest.raises(ValueError):
        run_pipeline(chain, show_progress=False)
    failed = record(tmp_path, "s1")
    assert failed["phase"] == "Failed" and failed["reason"] == "ValueError: spec.training.epochs: too many"
    assert not list(tmp_path.glob(f"*/{LEASE}"))


def test_a_stop_between_jobs_starts_no_further_job(chain, tmp_path, monkeypatch, no_ray):
    switch = StopSwitch()
    switch.request("SIGINT")
    with pytest.raises(StopRequested):
        run_pipeline(chain, show_progress=False, stop=switch)
    assert not (tmp_path / "s1" / "job.json").exists()


def test_recording_the_end_on_a_broken_store_still_raises_the_real_error(chain, tmp_path, monkeypatch, no_ray, capsys):
    training_that(monkeypatch, RunInterrupted("s1", "SIGTERM", 3, checkpointed=True))
    writes = []

    def write_json(uri, document):
        writes.append(document["phase"])
        if document["phase"] != "Running":
            raise OSError(28, "No space left on device")
        (tmp_path / "s1").mkdir(exist_ok=True)

    monkeypatch.setattr(pipeline, "write_json", write_json)
    with pytest.raises(RunInterrupted):
        run_pipeline(chain, show_progress=False)
    assert writes == ["Running", "Interrupted"] and "No space left on device" in capsys.readouterr().err
