"""The DeepSpeed config is a pure function of the spec."""

from __future__ import annotations

import pytest

from vlmtune.spec import TuningJobSpec
from vlmtune.train.deepspeed_config import deepspeed_config, resolve_precision


def spec(**training) -> TuningJobSpec:
    resources = training.pop("resources", {"workers": 4})
    return TuningJobSpec.model_validate(
        {
            "model": {"preset": "tiny"},
            "data": {"sources": [{"demo": {}}]},
            "output": {"uri": "./runs/x"},
            "training": {"globalBatchSize": 128, "microBatchSize": 4, **training},
            "resources": resources,
        }
    )


def test_batch_arithmetic_and_defaults():
    config = deepspeed_config(spec())
    assert config["train_batch_size"] == 128
    assert config["train_micro_batch_size_per_gpu"] == 4
    assert config["gradient_accumulation_steps"] == 8  # 128 / (4 workers x 4)
    assert config["zero_optimization"]["stage"] == 2
    assert config["gradient_clipping"] == 1.0
    assert config["bf16"] == {"enabled": False} and config["fp16"]["enabled"] is False


def test_auto_precision_is_bf16_on_gpus_fp32_on_cpus():
    assert resolve_precision(spec(resources={"workers": 4, "gpusPerWorker": 1})) == "bf16"
    assert resolve_precision(spec()) == "fp32"
    gpu = deepspeed_config(spec(resources={"workers": 4, "gpusPerWorker": 1}))
    assert gpu["bf16"] == {"enabled": True}


def test_zero3_with_offload():
    config = deepspeed_config(
        spec(
            deepspeed={"zeroStage": 3, "offloadOptimizer": True, "offloadParams": True},
            resources={"workers": 4, "gpusPerWorker": 1},
        )
    )
    zero = config["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"


def test_param_offload_needs_zero3():
    with pytest.raises(ValueError, match="offloadParams needs zeroStage: 3"):
        spec(deepspeed={"zeroStage": 2, "offloadParams": True})
