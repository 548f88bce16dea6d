"""Training on Ray Train + DeepSpeed: the driver side (`run_tuning_job`: plan, resume point, TorchTrainer) and the
worker side (`train_loop_per_worker`, the one `train_step` that also runs without Ray), checkpoints that count only
once verified, and a clean stop on request.

    from vlmtune.train import run_tuning_job
    result = run_tuning_job(job)            # blocks; TrainResult(model_uri, history, data_report, ...)

Names load on first use, so importing `vlmtune.train` pulls in neither Ray nor torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainResult": "trainer",
    "run_tuning_job": "trainer",
    "train_loop_per_worker": "loop",
    "train_step": "step",
    "collate": "step",
    "MicroBatch": "step",
    "RunFailed": "stop",
    "RunInterrupted": "stop",
    "StopRequested": "stop",
    "StopSwitch": "stop",
    "latest_checkpoint": "resume",
    "clear_run": "resume",
    "deepspeed_config": "deepspeed_config",
    "read_history": "metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlmtune.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vlmtune.train.{_EXPORTS[name]}"), name)
