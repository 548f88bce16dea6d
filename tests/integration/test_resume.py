"""Failures lose no work and repeat none: a killed worker, and a killed job run again.

The sample ledger (`training.recordSamples`) records the keys each rank trained at each step; after
recovery it must equal the sample plan exactly: no sample repeated, none skipped, in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vlmtune.data.sources import read_sources
from vlmtune.spec import load_jobs
from vlmtune.train.ledger import read_ledger
from vlmtune.train.trainer import sample_plan

pytestmark = pytest.mark.integration

STEPS = 12


def overrides(out: Path) -> list[str]:
    return [f"spec.output.uri={out}", f"spec.training.maxSteps={STEPS}", "spec.training.recordSamples=true",
            "spec.training.checkpointEverySteps=3"]


def start(repo: Path, out: Path, cache: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "vlmtune.cli", "run", str(repo / "jobs" / "smoke.yaml")]
    for item in overrides(out):
        command += ["--set", item]
    # A process group of its own: killing it takes the embedded Ray cluster down with the driver.
    return subprocess.Popen(command, cwd=repo, env={**os.environ, "VLMTUNE_CACHE": str(cache)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"run ended before {path.name} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def expected_streams(repo: Path, out: Path, cache: Path, monkeypatch) -> list[list[str]]:
    """Each rank's sample keys for the whole run, from the same pure plan the driver uses."""
    monkeypatch.setenv("VLMTUNE_CACHE", str(cache))
    (job,) = load_jobs([repo / "jobs" / "smoke.yaml"], overrides(out))
    spec = job.spec
    records, _ = read_sources(spec.data.sources)
    plan = sample_plan(spec, records, image_tokens=64)  # the tiny preset's vision tower
    return [[record["key"] for record in stream] for stream in plan.per_rank]


def trained_streams(out: Path) -> list[list[str]]:
    ledger = read_ledger(str(out))
    assert sorted(ledger) == [0, 1]
    for rank, steps in ledger.items():
        assert sorted(steps) == list(range(1, STEPS + 1)), f"rank {rank} ledger steps: {sorted(steps)}"
    return [[key for step in sorted(ledger[rank]) for key in ledger[rank][step]] for rank in (0, 1)]


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def test_killed_worker_is_restarted_from_its_checkpoint(repo, tmp_path, monkeypatch):
    out, cache = tmp_path / "run", tmp_path / "cache"
    process = start(repo, out, cache)
    wait_for(out / "checkpoints" / "checkpoint-000003" / "position_rank1.json", process)
    workers = [p for p in psutil.Process(process.pid).children(recursive=True)
               if "RayTrainWorker" in " ".join(p.cmdline())]
    assert workers, "no Ray Train worker process found"
    assert not (out / "model").exists(), "the run finished before a worker could be killed"
    workers[-1].kill()
    output = finish(process)
    assert f"smoke: {STEPS} steps" in output
    assert trained_streams(out) == expected_streams(repo, out, cache, monkeypatch)
    assert (out / "model" / "model.safetensors").exists()


def test_killed_job_resumes_where_it_stopped(repo, tmp_path, monkeypatch):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = start(repo, out, cache)
    wait_for(out / "checkpoints" / "checkpoint-000006" / "position_rank1.json", first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "model").exists()
    output = finish(start(repo, out, cache))
    history = [line for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == len(set(history))
    assert trained_streams(out) == expected_streams(repo, out, cache, monkeypatch)
    assert f"smoke: {STEPS} steps" in output and "(step 1)" in output  # history survives the restart
