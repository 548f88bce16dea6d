"""The DeepSpeed config: a pure function of the spec."""

from __future__ import annotations

from vlmtune.spec import Precision, TuningJobSpec


def resolve_precision(spec: TuningJobSpec) -> str:
    """`auto` means bf16 on GPUs and fp32 on CPUs (DeepSpeed's CPU path trains in fp32)."""
    if spec.training.precision is Precision.auto:
        return "bf16" if spec.resources.gpus_per_worker > 0 else "fp32"
    return spec.training.precision.value


def deepspeed_config(spec: TuningJobSpec) -> dict:
    """DeepSpeed config for `spec` (the learning-rate schedule is `schedule.lr_multiplier`).

    Gradient accumulation is derived: globalBatchSize / (workers x microBatchSize); the spec
    validator has already rejected batch sizes that do not divide.
    """
    training, zero = spec.training, spec.training.deepspeed
    precision = resolve_precision(spec)
    zero_config: dict = {"stage": zero.zero_stage, "contiguous_gradients": True, "overlap_comm": False}
    if zero.offload_optimizer:
        zero_config["offload_optimizer"] = {"device": "cpu", "pin_memory": spec.resources.gpus_per_worker > 0}
    if zero.offload_params:
        zero_config["offload_param"] = {"device": "cpu", "pin_memory": True}
    if zero.zero_stage == 3:
        # Needed to export one consolidated model at the end.
        zero_config["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
        "gradient_clipping": training.gradient_clipping,
        "zero_optimization": zero_config,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        # The optimizer is torch AdamW, built by the train loop; ZeRO handles it fine.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
