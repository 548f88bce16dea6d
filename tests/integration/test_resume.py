"""Failures lose no work and repeat none: a killed worker, a killed job run again (at another world size),
and a worker that gets SIGTERM (pod eviction, spot reclaim).

The sample ledger (`training.recordSamples`) records the micro-batches each rank trained at each step; after
recovery, put back together across ranks, it must equal the sample plan exactly: no sample repeated, none
skipped, in plan order. A whole-job resume with another `workers` stands in for an elastic resize here (a
2-core machine cannot grow a Ray cluster): both restart the worker group from the newest checkpoint at a
new world size through the same code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vlmtune.bench.scale import train_workers as ray_train_workers
from vlmtune.data.catalog import build_catalog
from vlmtune.data.mixture import job_plan
from vlmtune.data.sources import resolve_sources
from vlmtune.spec import load_jobs
from vlmtune.spec.layout import CHECKPOINT_RECORD
from vlmtune.train.ledger import read_steps

pytestmark = pytest.mark.integration

STEPS = 12


def overrides(out: Path, *extra: str) -> list[str]:
    return [
        f"spec.output.uri={out}",
        f"spec.training.maxSteps={STEPS}",
        "spec.training.recordSamples=true",
        "spec.training.checkpointEverySteps=3",
        *extra,
    ]


def start(repo: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "vlmtune.cli", "run", str(repo / "jobs" / "smoke.yaml")]
    for item in overrides(out, *extra):
        command += ["--set", item]
    # A process group of its own: killing it takes the embedded Ray cluster down with the driver.
    return subprocess.Popen(
        command,
        cwd=repo,
        env={**os.environ, "VLMTUNE_CACHE": str(cache)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    wait_until(path.exists, process, f"{path}", timeout)


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    """Poll `condition` until it holds; fail if the run ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"run ended before {what}:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def planned_steps(repo: Path, out: Path, cache: Path, monkeypatch, *extra: str) -> dict[int, list[list[str]]]:
    """step -> micro-batches of sample keys, from the same pure plan the driver uses (any world size)."""
    monkeypatch.setenv("VLMTUNE_CACHE", str(cache))
    (job,) = load_jobs([repo / "jobs" / "smoke.yaml"], overrides(out, *extra))
    spec = job.spec
    catalog = build_catalog(resolve_sources(spec.data.sources, str(out)))
    plan = job_plan(spec, catalog, image_tokens=64)  # the tiny preset's vision tower
    keys = catalog.keys(plan.ids.reshape(-1))
    micro = plan.ids.shape[2]
    micro_batches = [keys[start : start + micro] for start in range(0, len(keys), micro)]
    per_step = plan.ids.shape[1]
    return {step + 1: micro_batches[step * per_step : (step + 1) * per_step] for step in range(plan.steps)}


def train_workers(process: subprocess.Popen) -> list[psutil.Process]:
    workers = ray_train_workers(process.pid)
    assert workers, "no Ray Train worker process found"
    return workers


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def kill_job(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows}


def test_killed_job_resumes_where_it_stopped_at_another_world_size(repo, tmp_path, monkeypatch):
    """2 workers -> the whole job killed after step 6 -> run again with 1 worker (twice the gradient
    accumulation, same global batch): it continues from its newest checkpoint, ZeRO-2 optimizer shards are
    re-split, and every planned micro-batch is trained once, in order. (Same-size restores are the
    worker-kill test's.)"""
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = start(repo, out, cache)
    wait_for(out / "checkpoints" / "checkpoint-000006" / "position_rank1.json", first)
    kill_job(first)
    assert not (out / "model").exists()
    assert json.loads((out / "lease.json").read_text())["pid"] == first.pid  # left behind; must not block the rerun
    output = finish(start(repo, out, cache, "spec.resources.workers=1"))
    history = (out / "metrics.jsonl").read_text().splitlines()
    assert len(history) == len(set(history))
    assert f"smoke: {STEPS} steps" in output and "(step 1)" in output  # history survives the restart
    trained = read_steps(str(out))
    assert trained == planned_steps(repo, out, cache, monkeypatch)
    worlds_by_step: dict[int, set] = {}
    for chunk in (out / "samples").iterdir():
        for row in map(json.loads, chunk.read_text().splitlines()):
            worlds_by_step.setdefault(row["step"], set()).add(row["worldSize"])
    resumed_at = max(step for step, worlds in worlds_by_step.items() if worlds == {2})
    assert resumed_at in (3, 6)  # checkpoint 6, or 3 when the kill came before 6 was complete
    shown = [int(step) for step in re.findall(rf"smoke: step (\d+)/{STEPS}", output)]
    assert shown and shown[0] > resumed_at and shown[-1] == STEPS  # progress goes on from the checkpoint, not 0
    assert all(worlds_by_step[step] == {1} for step in range(resumed_at + 1, STEPS + 1))
    loss = losses(out)
    # A sanity check that training went on rather than starting over (step 1 is ~ln(vocab)); exactness of the
    # re-split optimizer state is tests/unit/train/test_checkpoint_world_size.py's job.
    assert loss[8] < loss[2] and loss[12] < loss[3]


def test_a_worker_sigterm_then_a_worker_kill_each_restart_the_group_from_a_checkpoint(repo, tmp_path, monkeypatch):
    """An elastic job (1 to 2 workers), two failures in one run (each restart costs half a minute here):
    1. a worker gets SIGTERM (pod eviction, spot reclaim): all ranks checkpoint at the next step boundary, off the
       checkpointEverySteps schedule, stop, and Ray Train restarts the group from that checkpoint;
    2. a worker of the restarted group is killed (-9, no warning): the group restarts from the newest checkpoint.
    The ledger, put back together, is the plan: no sample lost or repeated."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    steps, every = 15, 5
    extra = (
        f"spec.training.maxSteps={steps}",
        f"spec.training.checkpointEverySteps={every}",
        "spec.training.keepCheckpoints=10",
        "spec.resources.elastic.minWorkers=1",
        "spec.resources.elastic.maxWorkers=2",
    )
    process = start(repo, out, cache, *extra)
    wait_for(out / "checkpoints" / f"checkpoint-{every:06d}" / CHECKPOINT_RECORD, process)
    assert not (out / "model").exists(), "the run finished before a worker got SIGTERM"
    first_group = {worker.pid for worker in train_workers(process)}
    train_workers(process)[-1].send_signal(signal.SIGTERM)

    wait_for(out / "checkpoints" / f"checkpoint-{2 * every:06d}" / CHECKPOINT_RECORD, process)
    assert not (out / "model").exists(), "the run finished before a worker could be killed"
    restarted = [worker for worker in train_workers(process) if worker.pid not in first_group]
    assert restarted, "the SIGTERM did not restart the worker group"
    restarted[-1].kill()
    seen = first_group | {worker.pid for worker in restarted}
    wait_until(
        lambda: any(worker.pid not in seen for worker in ray_train_workers(process.pid)),
        process,
        "a third worker group",
    )

    output = finish(process)
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert [step for step in checkpoints if step % every], f"no preemption checkpoint among {checkpoints}"
    assert f"smoke: {steps} steps" in output
    assert read_steps(str(out)) == planned_steps(repo, out, cache, monkeypatch, *extra)
    assert (out / "model" / "model.safetensors").exists()
