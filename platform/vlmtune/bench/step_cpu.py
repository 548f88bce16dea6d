"""CPU half of `vlmtune bench step`: Ray Train + DeepSpeed against a plain torch loop, same math.

Lever flags apply to both sides, so the plain loop's seconds with and without a lever are its CPU cost.
"""

from __future__ import annotations

import shutil
import tempfile

import torch

from vlmtune.bench.step import synthetic_batches, time_steps
from vlmtune.train import deepspeed_internals
from vlmtune.train.levers import Levers, prepare_model
from vlmtune_model.shapes import TINY

THREADS = 1  # the same intra-op threads on both sides, as each Ray worker gets one CPU


def _setup(micro_batch: int, accumulation: int, levers: Levers):
    from vlmtune_model import build_tiny

    built = build_tiny(seed=0)
    prepare_model(built.model, levers, "cpu")
    batches = synthetic_batches(
        TINY, micro_batch, 128, accumulation, built.model.config.image_token_index, torch.float32
    )
    return built.model.train(), batches


def _plain_seconds_per_step(micro_batch: int, accumulation: int, steps: int, warmup: int, levers: Levers) -> float:
    from vlmtune.train.plain_engine import PlainEngine

    model, batches = _setup(micro_batch, accumulation, levers)
    engine = PlainEngine(model, torch.optim.AdamW(model.parameters(), lr=1e-4), accumulation)
    return time_steps(engine, batches, accumulation, steps, warmup, torch.device("cpu"), torch.float32, levers)


def _ray_worker(config: dict) -> None:
    import deepspeed
    import ray.train

    torch.set_num_threads(THREADS)
    model, batches = _setup(config["micro_batch"], config["accumulation"], config["levers"])
    deepspeed_internals.skip_shm_comm()
    engine, *_ = deepspeed.initialize(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-4),
        dist_init_required=False,
        config={
            "train_micro_batch_size_per_gpu": config["micro_batch"],
            "gradient_accumulation_steps": config["accumulation"],
            "gradient_clipping": 1.0,
            "zero_optimization": {"stage": 2},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        },
    )
    seconds = time_steps(
        engine,
        batches,
        config["accumulation"],
        config["steps"],
        config["warmup"],
        torch.device("cpu"),
        torch.float32,
        config["levers"],
    )
    # Ray Train keeps only metrics that come with a checkpoint; an empty one carries the figure.
    with tempfile.TemporaryDirectory() as folder:
        ray.train.report({"seconds_per_step": seconds}, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _ray_seconds_per_step(micro_batch: int, accumulation: int, steps: int, warmup: int, levers: Levers) -> float:
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    storage = tempfile.mkdtemp(prefix="vlmtune-bench-")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        trainer = TorchTrainer(
            _ray_worker,
            train_loop_config={
                "micro_batch": micro_batch,
                "accumulation": accumulation,
                "steps": steps,
                "warmup": warmup,
                "levers": levers,
            },
            scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=ray.train.RunConfig(storage_path=storage, name="bench-step"),
        )
        return trainer.fit().metrics["seconds_per_step"]
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started_here:
            ray.shutdown()


def bench_cpu(micro_batch: int, accumulation: int, steps: int, warmup: int, levers: Levers = Levers()) -> dict:
    """Seconds per sample of the plain loop and of Ray Train + DeepSpeed (one worker), both with `levers`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        plain = _plain_seconds_per_step(micro_batch, accumulation, steps, warmup, levers)
    finally:
        torch.set_num_threads(previous)
    ray_ds = _ray_seconds_per_step(micro_batch, accumulation, steps, warmup, levers)
    samples = micro_batch * accumulation
    return {
        "mode": "cpu",
        "shape": "tiny",
        "micro_batch": micro_batch,
        "accumulation": accumulation,
        "steps": steps,
        "plain_s_per_sample": plain / samples,
        "ray_deepspeed_s_per_sample": ray_ds / samples,
        "overhead_ratio": ray_ds / plain,
        **levers.describe(),
    }
