"""`vlmtune plan` on the paper's stage-1 job: fits on A100-80GB, not at micro-batch 16 on A100-40GB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmtune.cli import main

FIXTURE = Path(__file__).with_name("stage1_paper.yaml")
GIB = 2**30


def plan(capsys, *args: str) -> tuple[int, dict | str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in args else out), err


def test_paper_stage1_fits_on_a100_80gb(capsys):
    code, result, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--json")
    assert code == 0 and result["fits"] is True and result["suggestion"] is None
    assert 40 * GIB < result["per_gpu_bytes"] <= 80 * GIB
    assert result["per_gpu_bytes"] == pytest.approx(
        sum(
            result["breakdown"][k]
            for k in (
                "params",
                "gradients",
                "optimizer",
                "zero_buffers",
                "deepspeed_buffers",
                "activations_kept",
                "activations_backward_peak",
                "overhead",
            )
        ),
        abs=8,
    )
    assert result["model"]["trainable_params"] == 13_015_864_320 + 31_467_520
    assert result["setup"]["zero_stage"] == 3 and result["setup"]["micro_batch"] == 16


def test_gpu_type_defaults_from_the_node_pool(capsys):
    _, named, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--json")
    _, pooled, _ = plan(capsys, str(FIXTURE), "--json")
    assert pooled == named


def test_micro_batch_16_does_not_fit_on_a100_40gb_and_the_suggestion_does(capsys):
    code, result, _ = plan(
        capsys, str(FIXTURE), "--gpu", "a100-40gb", "--set", "spec.training.microBatchSize=16", "--json"
    )
    assert code == 1 and result["fits"] is False and result["per_gpu_bytes"] > 40 * GIB
    suggestion = result["suggestion"]
    assert suggestion["changes"][0]["field"] == "spec.training.microBatchSize"
    assert suggestion["per_gpu_bytes"] <= 40 * GIB
    overrides = [arg for change in suggestion["set"] for arg in ("--set", change)]
    code, again, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-40gb", *overrides, "--json")
    assert code == 0 and again["fits"] is True and again["per_gpu_bytes"] == suggestion["per_gpu_bytes"]


def test_text_output_shows_the_verdict_and_the_rerun_command(capsys):
    code, text, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-40gb")
    assert code == 1 and "does NOT fit" in text
    assert f"check: vlmtune plan {FIXTURE} --gpu a100-40gb --set spec.training.microBatchSize=" in text
    _, text, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb")
    assert ": fits" in text and "--samples N (Vision-Flan 1.0 holds 1,664,261)" in text


def test_samples_give_steps_tokens_and_hours(capsys):
    _, result, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--samples", "1664261", "--json")
    assert result["steps"] == 1_664_261 // 128 and result["tokens"] == result["steps"] * 128 * 2048
    assert result["gpu_hours"] == pytest.approx(result["flops"] / (312e12 * 0.4) / 3600)
    assert result["wall_hours"] == pytest.approx(result["gpu_hours"] / 8)


def test_jobs_that_cannot_be_planned_say_why(capsys, repo):
    code, _, err = plan(capsys, str(repo / "jobs" / "quickstart.yaml"))
    assert code == 2 and "spec.resources.nodePool" in err and "a100-80gb" in err
    code, _, err = plan(capsys, str(FIXTURE), "--set", "spec.model.languageModel=s3://models/vicuna/")
    assert code == 2 and "spec.model.languageModel" in err and "--shape" in err
    code, result, _ = plan(
        capsys, str(FIXTURE), "--set", "spec.model.languageModel=s3://models/vicuna/", "--shape", "llava-13b", "--json"
    )
    assert code == 0 and result["model"]["shape"] == "llava-13b"


def test_quickstart_plans_on_any_gpu(capsys, repo):
    # The quickstart is an Experiment: planned as the TuningJobs it expands into (stage 1, stage 2, mixed).
    code, results, _ = plan(capsys, str(repo / "jobs" / "quickstart.yaml"), "--gpu", "a10g", "--json")
    assert code == 0 and all(result["fits"] for result in results) and len(results) == 3
    assert results[0]["samples"] == 256 * 10 and results[0]["steps"] == 400


def test_the_shipped_stage1_job(capsys, repo):
    stage1 = repo / "jobs" / "stage1.yaml"
    if not stage1.exists():
        pytest.skip("jobs/stage1.yaml is not written yet")
    code, result, _ = plan(capsys, str(stage1), "--gpu", "a100-80gb", "--json")
    assert code == 0 and result["fits"] is True
    code, result, _ = plan(
        capsys, str(stage1), "--gpu", "a100-40gb", "--set", "spec.training.microBatchSize=16", "--json"
    )
    assert code == 1 and result["fits"] is False and result["suggestion"] is not None


def test_checkpoint_layers_trade_memory_for_recompute(capsys):
    def kept(*overrides: str) -> tuple[int, dict]:
        code, result, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", *overrides, "--json")
        return result["breakdown"]["activations_kept"], result

    all_layers, result = kept()
    assert result["setup"]["checkpoint_layers"] is None
    half, result = kept("--set", "spec.training.checkpointLayers=20")
    assert result["setup"]["checkpoint_layers"] == 20
    every, _ = kept("--set", "spec.training.checkpointLayers=40")  # the 13B model's 40 layers
    none, _ = kept("--set", "spec.training.gradientCheckpointing=false")
    assert every == all_layers < half < none
    _, text, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--set", "spec.training.checkpointLayers=20")
    assert "gradient checkpointing on for the first 20 layers" in text


def test_more_checkpoint_layers_than_the_model_has_is_an_error(capsys):
    code, _, err = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--set", "spec.training.checkpointLayers=41")
    assert code == 2 and "spec.training.checkpointLayers: 41 is more than the model's 40 decoder layers" in err


def test_lora_plans_adapters_as_the_trainable_state(capsys):
    _, full, _ = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--samples", "12800", "--json")
    _, lora, _ = plan(
        capsys, str(FIXTURE), "--gpu", "a100-80gb", "--samples", "12800", "--set", "spec.model.lora.rank=128", "--json"
    )
    # Vicuna-13B: 40 layers, hidden 5120, intermediate 13824; r=128 on q, k, v, o, gate, up, down.
    adapters = 40 * 128 * (4 * 2 * 5120 + 3 * (5120 + 13824))
    assert lora["model"]["trainable_params"] == 31_467_520 + adapters
    assert lora["breakdown"]["optimizer"] < full["breakdown"]["optimizer"] / 10
    assert lora["per_gpu_bytes"] < full["per_gpu_bytes"]
    assert lora["flops"] < full["flops"]


def test_lora_target_that_llama_lacks_names_the_field(capsys):
    code, _, err = plan(capsys, str(FIXTURE), "--gpu", "a100-80gb", "--set", "spec.model.lora.targetModules=[fc1]")
    assert code != 0 and "spec.model.lora.targetModules" in err and "fc1" in err
