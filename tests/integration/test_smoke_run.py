"""The real path end to end: demo data -> Ray Data -> Ray Train (2 workers) + DeepSpeed ZeRO-2 -> export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, repo):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    env = {**os.environ, "VLMTUNE_CACHE": str(tmp_path_factory.mktemp("cache"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmtune.cli",
            "run",
            str(repo / "jobs" / "smoke.yaml"),
            "--set",
            f"spec.output.uri={out}",
            "--set",
            "spec.output.mlflow.experiment=smoke",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stdout


def test_summary_reports_falling_loss(smoke_run):
    out, stdout = smoke_run
    assert "smoke: 6 steps" in stdout and f"{out}/model" in stdout
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [1, 2, 3, 4, 6]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(row["samples"] > 0 and row["tokens_per_s"] > 0 for row in history)
    # Every row carries what the operator computes progress from; MFU is null on CPUs (no peak to divide by).
    assert all(row["total_steps"] == 6 and row["mfu"] is None for row in history)
    per_epoch = json.loads((out / "data_report.json").read_text())["stepsPerEpoch"]
    assert [row["epoch"] for row in history] == [round(row["step"] / per_epoch, 4) for row in history]


def test_tensorboard_shows_the_metrics_jsonl_figures(smoke_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = smoke_run
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    board = EventAccumulator(str(out / "tensorboard"))
    board.Reload()
    for name in ("loss", "learning_rate", "tokens_per_s", "skipped"):
        events = board.Scalars(f"train/{name}")
        assert [e.step for e in events] == [row["step"] for row in history]
        assert [e.value for e in events] == pytest.approx([row[name] for row in history], rel=1e-6)
    assert "train/mfu" not in board.Tags()["scalars"]


def test_mlflow_run_holds_the_spec_and_the_metrics(smoke_run):
    from mlflow.tracking import MlflowClient

    out, _ = smoke_run
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.run_name == "smoke" and run.info.status == "FINISHED"
    assert run.data.params["training.maxSteps"] == "6"
    losses = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
    assert losses == [(row["step"], pytest.approx(row["loss"], rel=1e-9)) for row in history]


def test_export_loads_and_generates(smoke_run):
    out, _ = smoke_run
    model = LlavaForConditionalGeneration.from_pretrained(out / "model")
    processor = AutoProcessor.from_pretrained(out / "model")
    image_id = model.config.image_token_index
    ids = torch.tensor([[processor.tokenizer.bos_token_id] + [image_id] * 64 + [2054, 3609]])
    generated = model.generate(input_ids=ids, pixel_values=torch.zeros(1, 3, 64, 64), max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > ids.shape[1]


def test_checkpoints_hold_every_rank_and_its_data_position(smoke_run):
    out, _ = smoke_run
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-000003", "checkpoint-000006"]
    last = checkpoints[-1]
    assert (last / "state" / "mp_rank_00_model_states.pt").exists()
    assert {p.name for p in (last / "state").glob("zero_pp_rank_*")} == {
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    }
    for rank in (0, 1):
        position = json.loads((last / f"position_rank{rank}.json").read_text())
        assert position == {"step": 6, "world_size": 2}  # the step is the data position at any world size
