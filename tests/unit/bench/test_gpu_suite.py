"""bench/gpu.sh and the suite it runs: the script parses and refuses bad arguments, the suite's budget and table,
one real variant on CPU, and (slow) the whole script's dry run on CPU with Ray, DeepSpeed and pydantic hidden, as
on the lent GPU machines, which hold torch and transformers but not those."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmtune.bench import gpu_suite
from vlmtune.bench.gpu_suite import VARIANTS, Deadline, SuiteConfig, Variant, checkpoint_layers, run_suite, table

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "bench" / "gpu.sh"
HIDDEN = ("ray", "deepspeed", "pydantic")


def test_the_script_is_executable_bash_that_parses():
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, timeout=10).returncode == 0


@pytest.mark.parametrize("args", [["--fast"], ["--budget-s"], ["--budget-s", "ten"]])
def test_the_script_refuses_bad_arguments_in_one_line(args, tmp_path):
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=10, env={**os.environ, "OUT": str(tmp_path)}
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("gpu.sh: ")
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_every_lever_runs_against_its_reference():
    by_name = {variant.name: variant for variant in VARIANTS}
    assert all(variant.versus in by_name for variant in VARIANTS)
    assert by_name["baseline"].levers == gpu_suite.Levers()
    on = {field for variant in VARIANTS for field, value in variant.levers.describe().items() if value is True}
    assert on == {"chunked_loss", "compile_layers", "pack_samples", "offload_activations"}
    assert by_name["ragged_packed"].ragged and by_name["ragged_packed"].versus == "ragged_padded"


def test_offloading_variants_keep_some_layers_outside_recomputation():
    half = Variant("half", "", checkpoint_share=0.5)
    assert checkpoint_layers(half, 32) == 16 and checkpoint_layers(half, 2) == 1
    assert checkpoint_layers(Variant("all", ""), 32) is None
    assert checkpoint_layers(Variant("most", "", checkpoint_share=0.99), 2) == 1  # never all: nothing would offload


def test_the_deadline_skips_what_would_overrun():
    now = [0.0]
    deadline = Deadline(100.0, clock=lambda: now[0])
    assert deadline.fits(reserve_s=40.0)
    deadline.ran(30.0)
    now[0] = 25.0
    assert deadline.fits(reserve_s=40.0) and deadline.left(40.0) == 35.0
    now[0] = 31.0
    assert not deadline.fits(reserve_s=40.0) and deadline.fits()


def _result(step: list[dict], e2e: dict) -> dict:
    return {
        "environment": {
            "device": "cuda",
            "gpu": "NVIDIA H100 80GB HBM3",
            "torch": "2.11",
            "transformers": "5.17",
            "flash_attn": False,
        },
        "config": {"shape": "llava-7b", "micro_batch": 8, "accumulation": 2, "seq_len": 2048},
        "step": step,
        "e2e": e2e,
    }


def _row(name: str, tokens_per_s: float, versus: str = "baseline", **extra) -> dict:
    return {
        "variant": name,
        "versus": versus,
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s / 25_000,
        "max_memory_gib": 60.0,
        "checkpoint_layers": 32,
        "attention": "sdpa",
        **extra,
    }


def test_the_table_compares_each_variant_with_its_reference_and_names_what_did_not_run():
    e2e = {
        "shape": "llava-2.7b",
        "bare": {"tokens_per_s": 20_000.0, "mfu": 0.5},
        "full": {"tokens_per_s": 18_400.0, "mfu": 0.46},
        "ratio": 0.92,
        "data_wait_fraction": 0.01,
        "meets_targets": True,
        "targets": {"ratio": 0.9, "data_wait_fraction": 0.02},
    }
    text = table(
        _result(
            [
                _row("baseline", 10_000.0),
                _row("chunked_loss", 11_000.0),
                {"variant": "compile_layers", "versus": "baseline", "error": "out of memory"},
                _row("ragged_padded", 8_000.0),
                _row("ragged_packed", 9_600.0, versus="ragged_padded"),
                {"variant": "offload_half", "versus": "baseline", "skipped": "time budget: under 40 s left"},
            ],
            e2e,
        )
    )
    lines = text.splitlines()
    assert "NVIDIA H100 80GB HBM3" in lines[0] and "llava-7b" in lines[1]
    assert "1.100x baseline" in next(line for line in lines if line.startswith("chunked_loss"))
    assert "1.200x ragged_padded" in next(line for line in lines if line.startswith("ragged_packed"))
    assert next(line for line in lines if line.startswith("compile_layers")).endswith("out of memory")
    assert "time budget" in next(line for line in lines if line.startswith("offload_half"))
    assert "ratio 0.920" in lines[-1] and "data wait 1.00%" in lines[-1] and "meets the targets" in lines[-1]
    skipped = table(_result([_row("baseline", 10_000.0)], {"skipped": "needs ray, not installed here"}))
    assert skipped.splitlines()[-1] == "bench e2e: needs ray, not installed here"


def test_one_variant_on_cpu_then_the_budget_skips_the_next_and_e2e_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "missing_packages", lambda names=HIDDEN: list(HIDDEN))
    ticks = iter(range(0, 10_000, 10))  # every reading of the clock is 10 s later: the first variant "takes" 10 s
    config = SuiteConfig(
        device="cpu", shape="tiny", micro_batch=2, seq_len=96, accumulation=1, steps=1, warmup=0, budget_s=25
    )
    result = run_suite(config, tmp_path, variants=VARIANTS[:2], clock=lambda: next(ticks))
    baseline, chunked = result["step"]
    assert baseline["variant"] == "baseline" and baseline["tokens_per_s"] > 0 and baseline["checkpoint_layers"] == 2
    assert chunked["skipped"] == "time budget: 0 s left, the longest variant took 10 s"
    assert result["e2e"] == {
        "skipped": "needs ray, deepspeed, pydantic, not installed here (install the project: "
        "pip install -e '.[train]', or carry their wheels in .whl/)"
    }
    assert json.loads((tmp_path / "gpu_suite.json").read_text())["step"][0]["tokens_per_s"] == baseline["tokens_per_s"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_dry_run_runs_every_variant_on_cpu_with_what_the_gpu_machines_hold(tmp_path):
    """The script end to end on CPU (tiny shape), with ray, deepspeed and pydantic unimportable as on the lent GPU
    machines: every step variant measures, e2e is recorded as skipped, the table and the JSON land in $OUT."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(f"import sys\nfor name in {HIDDEN!r}:\n    sys.modules[name] = None\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=840,
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(hide)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "gpu_suite.json").read_text())
    assert [row["variant"] for row in result["step"]] == [variant.name for variant in VARIANTS]
    assert all(row["tokens_per_s"] > 0 for row in result["step"]), result["step"]
    assert result["e2e"]["skipped"].startswith("needs ray, deepspeed, pydantic")
    assert "bench e2e: needs ray" in done.stdout and (out / "gpu_suite.log").read_text().count("\n") >= 10
