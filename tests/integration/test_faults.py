"""Fault injection on real runs (embedded Ray, Ray Train + DeepSpeed, Ray Data): Ctrl-C and SIGTERM on the driver,
a second run on the same output, a damaged newest checkpoint, a full disk. After each, nothing is lost or repeated
(the sample ledger equals the plan), nothing prints a traceback, and every stop comes within a time bound.

Killing a worker, killing the whole job (-9) and SIGTERM to a worker are `test_resume.py`'s. What is not exercised
here: a Kubernetes eviction itself (the driver's SIGTERM stands in for it) and object-store outages during a
checkpoint (`test_s3.py` covers reads; checkpoint integrity on S3 is `tests/unit/train/test_checkpoint_integrity.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from test_resume import STEPS, finish, planned_steps, start, wait_for
from vlmtune.spec.layout import CHECKPOINT_RECORD, LEASE
from vlmtune.train.completion import damage
from vlmtune.train.ledger import read_steps
from vlmtune.train.metrics import read_history

pytestmark = pytest.mark.integration

STOP_BOUND_S = 300  # from the signal to the exit: a step, a checkpoint and Ray's shutdown, on a loaded 2-core box
REFUSE_BOUND_S = 60


def complete(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"checkpoint-{step:06d}" / CHECKPOINT_RECORD


def ended(process: subprocess.Popen, timeout: float) -> tuple[int, str, float]:
    started = time.monotonic()
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output, time.monotonic() - started


def assert_one_interrupted_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, output[-3000:]
    assert "rerun to resume" in lines[0] and "Traceback" not in output and "Fatal Python" not in output, output[-3000:]
    return lines[0]


def assert_nothing_lost(repo: Path, out: Path, cache: Path, monkeypatch) -> None:
    assert read_steps(str(out)) == planned_steps(repo, out, cache, monkeypatch)
    steps = [row["step"] for row in read_history(str(out))]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS
    assert (out / "model" / "model.safetensors").exists() and not (out / LEASE).exists()


# -m slow: the driver-SIGTERM test below takes the same stop path (one handler for SIGINT and SIGTERM), and a held
# lease refusing a second run is unit-tested (tests/unit/runners/test_lease.py).
@pytest.mark.slow
def test_ctrl_c_checkpoints_and_a_second_run_on_the_output_is_refused(repo, tmp_path, monkeypatch):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = start(repo, out, cache)
    wait_for(out / LEASE, first)
    started = time.monotonic()
    second = subprocess.run(
        [*first.args],
        cwd=repo,
        env={**os.environ, "VLMTUNE_CACHE": str(cache)},
        capture_output=True,
        text=True,
        timeout=REFUSE_BOUND_S,
    )
    assert time.monotonic() - started < REFUSE_BOUND_S
    assert second.returncode == 1 and f"pid {first.pid} " in second.stderr, second.stderr[-2000:]
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr

    wait_for(complete(out, 3), first)
    assert not (out / "model").exists(), "the run finished before Ctrl-C"
    os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    code, output, took = ended(first, STOP_BOUND_S)
    assert code == 130 and took < STOP_BOUND_S, output[-3000:]
    assert_one_interrupted_line(output)
    record = json.loads((out / "job.json").read_text())
    assert record["phase"] == "Interrupted" and record["resumeStep"] >= 3
    assert complete(out, record["resumeStep"]).exists()
    assert damage(str(complete(out, record["resumeStep"]).parent)) is None
    assert not (out / LEASE).exists()

    finish(start(repo, out, cache))
    assert_nothing_lost(repo, out, cache, monkeypatch)


def test_sigterm_then_a_damaged_newest_checkpoint_falls_back_to_the_one_before(repo, tmp_path, monkeypatch):
    """SIGTERM (a head pod evicted) -> checkpoint, exit 143. Then the newest checkpoint's optimizer state is
    truncated: the rerun says so in one line, resumes from the one before (kept until then), and trains every
    planned sample once."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = start(repo, out, cache, "spec.training.keepCheckpoints=2")
    wait_for(complete(out, 6), first)
    first.send_signal(signal.SIGTERM)  # the driver alone, as the kubelet does to a pod's main process
    code, output, took = ended(first, STOP_BOUND_S)
    assert code == 143 and took < STOP_BOUND_S, output[-3000:]
    assert_one_interrupted_line(output)
    checkpoints = sorted(p for p in (out / "checkpoints").glob("checkpoint-*") if (p / CHECKPOINT_RECORD).exists())
    assert len(checkpoints) == 2, checkpoints
    older, newest = checkpoints
    state = newest / "state" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    output = finish(start(repo, out, cache, "spec.training.keepCheckpoints=2"))
    warnings = [line for line in output.splitlines() if "does not count" in line]
    assert len(warnings) == 1 and newest.name in warnings[0] and f"resuming from {older.name}" in warnings[0]
    assert_nothing_lost(repo, out, cache, monkeypatch)
    assert len([p for p in (out / "checkpoints").glob("checkpoint-*")]) == 2  # retention after the resume


@pytest.fixture
def small_disk(tmp_path):
    """A 160 MB tmpfs: two checkpoints of the tiny model (67 MB each) fit, a third does not."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160m", f"tmpfs-{uuid.uuid4().hex[:6]}", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_while_checkpointing_leaves_the_run_resumable(repo, tmp_path, monkeypatch, small_disk):
    out, cache = small_disk / "run", tmp_path / "cache"
    first = start(repo, out, cache, "spec.training.keepCheckpoints=3")
    code, output, _ = ended(first, 1200)
    assert code == 1, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("vlmtune run:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in output, output[-3000:]
    assert json.loads((out / "job.json").read_text())["phase"] == "Failed"
    intact = [p for p in sorted((out / "checkpoints").glob("checkpoint-*")) if damage(str(p)) is None]
    assert intact, "no usable checkpoint survived the full disk"

    cut = sorted((out / "checkpoints").glob("checkpoint-*"))[-1]
    assert cut not in intact, "the disk filled elsewhere than in a checkpoint"

    subprocess.run(["mount", "-o", "remount,size=600m", str(small_disk)], check=True)
    output = finish(start(repo, out, cache, "spec.training.keepCheckpoints=3"))
    (warning,) = [line for line in output.splitlines() if "does not count" in line]
    assert cut.name in warning and f"resuming from {intact[-1].name}" in warning
    assert_nothing_lost(repo, out, cache, monkeypatch)
