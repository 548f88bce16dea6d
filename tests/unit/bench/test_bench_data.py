"""`vlmtune bench data` at tiny size: it runs all three paths and reports every figure (no timing asserts)."""

from __future__ import annotations

import json

from vlmtune.bench.data import DataBenchConfig, run_data_bench
from vlmtune.bench.llava_reference import llava_loader
from vlmtune.bench.samples import generate_records
from vlmtune.cli import main
from vlmtune.data.demo import DEMO_TASKS
from vlmtune.data.preprocess import ProcessorConfig

KEYS = {
    "ratio_vs_llava",
    "ratio_vs_bound",
    "padding_fraction_grouped",
    "padding_fraction_random",
    "vlmtune",
    "llava",
    "bound",
    "samples",
    "config",
    "lengths",
}


def test_bench_reports_ratios_and_raw_figures():
    result = run_data_bench(DataBenchConfig(samples=8, warmup=1, padding_per_task=4))
    assert set(result) >= KEYS
    for path in ("vlmtune", "llava", "bound"):
        assert result[path]["samples_per_s_per_core"] > 0 and result[path]["cpu_s"] > 0
    rates = {path: result[path]["samples_per_s_per_core"] for path in ("vlmtune", "llava", "bound")}
    assert result["ratio_vs_llava"] == rates["vlmtune"] / rates["llava"]
    assert result["ratio_vs_bound"] == rates["bound"] / rates["vlmtune"]
    assert 0 <= result["padding_fraction_grouped"] <= result["padding_fraction_random"] < 1
    assert result["lengths"]["samples"] == len(DEMO_TASKS) * 4 and result["lengths"]["min"] > 576


def test_cli_prints_one_json_object(capsys):
    assert main(["bench", "data", "--json", "--samples", "4"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= KEYS


def test_llava_baseline_batches_like_llava():
    tokenizer = ProcessorConfig("tiny", 336, 576, 2048).load_tokenizer()
    batch = next(iter(llava_loader(generate_records(3, max_side=400), tokenizer, image_size=336, batch_size=3)))
    assert batch["images"].shape == (3, 3, 336, 336)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert (batch["input_ids"] == -200).sum(dim=1).tolist() == [1, 1, 1]  # one image placeholder each
