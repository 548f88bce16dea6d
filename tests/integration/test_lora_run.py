"""LoRA through the real path: Ray Train (2 workers) + DeepSpeed ZeRO-3 on the tiny model, merged export.

ZeRO-3 on purpose: parameters are partitioned across the ranks, so the export has to consolidate
the shards (a collective) before merging the adapters; ZeRO-2 runs are covered by the smoke tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from vlmtune_model import build_tiny

# Slow: LoRA's numerics and gradients are unit-tested (tests/unit/model/test_lora.py);
# this whole run is in `-m slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
peft = pytest.importorskip("peft")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, repo):
    out = tmp_path_factory.mktemp("runs") / "lora"
    env = {**os.environ, "VLMTUNE_CACHE": str(tmp_path_factory.mktemp("cache"))}
    overrides = [
        f"spec.output.uri={out}",
        "spec.model.lora={rank: 8, alpha: 16, dropout: 0.0}",
        "spec.data.sources=[{demo: {perTask: 4, heldoutPerTask: 0}}]",
        "spec.training.maxSteps=3",
        "spec.training.checkpointEverySteps=null",
        "spec.training.logEverySteps=1",
        "spec.training.deepspeed.zeroStage=3",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmtune.cli",
            "run",
            str(repo / "jobs" / "smoke.yaml"),
            *[arg for override in overrides for arg in ("--set", override)],
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_only_adapted_layers_and_projector_changed(lora_run):
    base = build_tiny(seed=0).model.state_dict()  # the job's starting model (training.seed 0)
    exported = LlavaForConditionalGeneration.from_pretrained(lora_run / "model").state_dict()
    assert exported.keys() == base.keys()
    changed = {name for name in base if not torch.equal(base[name], exported[name])}
    adapted = {
        name for name in base if name.startswith("model.language_model.layers.") and name.rsplit(".", 2)[-2] in TARGETS
    }
    projector = {name for name in base if "multi_modal_projector" in name}
    assert changed == adapted | projector


def test_adapter_reproduces_the_merged_language_model(lora_run):
    exported = LlavaForConditionalGeneration.from_pretrained(lora_run / "model")
    start = build_tiny(seed=0).model
    merged = peft.PeftModel.from_pretrained(start, lora_run / "model" / "adapter").merge_and_unload().state_dict()
    for name, value in exported.state_dict().items():
        if name.startswith("model.language_model."):
            assert torch.allclose(value, merged[name], atol=1e-5), name


def test_export_generates(lora_run):
    model = LlavaForConditionalGeneration.from_pretrained(lora_run / "model")
    image_id = model.config.image_token_index
    ids = torch.tensor([[101] + [image_id] * 64 + [2054, 3609]])
    generated = model.generate(input_ids=ids, pixel_values=torch.zeros(1, 3, 64, 64), max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > ids.shape[1]
