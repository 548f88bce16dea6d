"""`bench e2e`: the full path against the bare step. Pure parts, the child-process watcher's failure paths, and
one real run of the tiny shape on CPU (Ray Data from prepared shards, Ray Train, DeepSpeed, levers on)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from vlmtune.bench.e2e import (
    BenchFailed,
    E2EConfig,
    _stop,
    _wait_for_step,
    job_document,
    read_rows,
    report,
    summarize,
)
from vlmtune.spec import TuningJob
from vlmtune.train.levers import Levers, levers_of


def row(step: int, tokens: int, tokens_per_s: float, wait: float, mfu: float | None = None) -> dict:
    return {
        "step": step,
        "tokens": tokens,
        "tokens_per_s": tokens_per_s,
        "samples": tokens // 128,
        "data_wait_s": wait,
        "mfu": mfu,
    }


BARE = {
    "device": "NVIDIA H100 80GB HBM3",
    "tokens_per_s": 1000.0,
    "mfu": 0.5,
    "attention": "sdpa",
    "checkpoint_layers": 2,
}


def test_the_timed_window_is_the_one_after_the_warmup():
    assert E2EConfig(steps=3, warmup=2).timed_step == 6  # rows at 1, 3, 6: the window of steps 4-6
    assert E2EConfig(steps=2, warmup=5).timed_step == 8
    assert E2EConfig(steps=1, warmup=0).timed_step == 2  # at least one window of warmup
    assert E2EConfig(device="cuda").shape_name == "llava-2.7b" and E2EConfig().shape_name == "tiny"


def test_summary_divides_the_full_path_by_the_bare_step():
    config = E2EConfig(steps=3, warmup=2)
    rows = [row(1, 512, 100.0, 9.0), row(3, 1024, 800.0, 0.1), row(6, 1536, 960.0, 0.016, mfu=0.48)]
    result = summarize(config, BARE, rows)
    assert result["ratio"] == pytest.approx(0.96) and result["full"]["mfu"] == 0.48
    assert result["full"]["seconds_per_step"] == pytest.approx(1536 / 960 / 3)
    assert result["data_wait_fraction"] == pytest.approx(0.016 / 1.6) and result["meets_targets"]
    assert result["full"]["tokens_per_sample"] == 128 and result["warmup_steps"] == 3
    text = report(result, as_json=False)
    assert "ratio 0.960 (target >= 0.9)" in text and "MFU 48.0%" in text and "meets the targets" in text
    slow = summarize(config, BARE, rows[:2] + [row(6, 1536, 880.0, 0.5)])
    assert not slow["meets_targets"] and "misses" in report(slow, as_json=False)
    assert json.loads(report(result, as_json=True))["ratio"] == pytest.approx(0.96)


def test_the_job_is_the_bare_steps_settings_on_one_worker(tmp_path):
    levers = Levers(chunked_loss=True, pack=True, compile_layers=True, attention="flex_attention")
    config = E2EConfig(
        device="cuda",
        micro_batch=8,
        accumulation=2,
        seq_len=2048,
        steps=4,
        checkpoint_layers=24,
        levers=levers,
        cpus_per_worker=4,
    )
    job = TuningJob.model_validate(job_document(config, tmp_path / "model", tmp_path / "shards", tmp_path / "run"))
    training, resources = job.spec.training, job.spec.resources
    assert levers_of(training) == levers and training.checkpoint_layers == 24 and training.gradient_checkpointing
    assert (training.global_batch_size, training.micro_batch_size, training.max_length) == (16, 8, 2048)
    assert training.log_every_steps == 4 and job.spec.gradient_accumulation_steps == 2
    assert (resources.workers, resources.gpus_per_worker, resources.cpus_per_worker) == (1, 1, 4)
    assert job.spec.model.pretrained == str(tmp_path / "model")


def test_rows_being_written_are_read_up_to_the_last_complete_line(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    assert read_rows(metrics) == []
    metrics.write_text(json.dumps({"step": 1}) + "\n" + '{"step": 2, "lo')
    assert read_rows(metrics) == [{"step": 1}]


@pytest.mark.timeout(60)
def test_a_full_path_that_dies_fails_with_its_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("Traceback ...\nRuntimeError: CUDA out of memory")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    with pytest.raises(BenchFailed, match="ended before step 6:\nTraceback ...\nRuntimeError: CUDA out of memory"):
        _wait_for_step(process, tmp_path / "metrics.jsonl", 6, timeout_s=30, log=log)


@pytest.mark.timeout(60)
def test_a_stalled_full_path_times_out_and_its_process_group_is_killed(tmp_path):
    # The child starts a grandchild (as vlmtune run starts Ray): stopping the group must take both down.
    script = (
        "import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
        "time.sleep(300)']); print(child.pid, flush=True); time.sleep(300)"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    grandchild = psutil.Process(int(process.stdout.readline()))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    started = time.perf_counter()
    with pytest.raises(BenchFailed, match="reached no step 6 within 2 s"):
        _wait_for_step(process, tmp_path / "metrics.jsonl", 6, timeout_s=2, log=tmp_path / "absent.log")
    assert time.perf_counter() - started < 10
    _stop(process)
    assert process.returncode == -9
    try:
        assert grandchild.wait(timeout=10) is None or grandchild.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass  # reaped: gone


@pytest.mark.integration
@pytest.mark.slow  # a real `vlmtune run` (Ray, Ray Data, DeepSpeed): over a minute on 2 cores, 4.5 min when loaded
@pytest.mark.timeout(1500)
def test_tiny_shape_through_the_full_path_on_cpu(tmp_path, capsys):
    """`vlmtune bench e2e --json` on the tiny shape with packed rows and the chunked loss: the bare step and
    `vlmtune run` (Ray Data stream from prepared shards, Ray Train, DeepSpeed ZeRO-2) both train."""
    from vlmtune.cli import main

    code = main(
        [
            "bench",
            "e2e",
            "--json",
            "--workdir",
            str(tmp_path),
            "--micro-batch",
            "2",
            "--accumulation",
            "1",
            "--seq-len",
            "160",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--pack-samples",
            "--chunked-loss",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["mode"] == "e2e" and result["device"] == "cpu"
    assert result["bare"]["tokens_per_s"] > 0 and result["full"]["tokens_per_s"] > 0 and result["ratio"] > 0
    assert result["pack_samples"] and result["chunked_loss"] and result["bare"]["mfu"] is None
    rows = result["full"]["rows"]
    assert [r["step"] for r in rows] == [1, 2] and all("data_wait_s" in r for r in rows)
    assert rows[0]["data_wait_s"] > 0  # the first step waits for the stream to start
    assert 0 <= result["data_wait_fraction"] < 1
    assert result["full"]["tokens_per_sample"] == 160  # every sample truncated to the bare step's length
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "shards" / "manifest.json").exists()
