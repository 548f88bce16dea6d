"""`vlmtune bench step`: what the training path costs, measured against baselines in the same process.

CPU mode: seconds per sample of the Ray Train + DeepSpeed path (one worker, ZeRO-2) against a plain
single-process torch loop doing the same math on the same tiny model and batches -> `overhead_ratio`.

GPU mode (`--device cuda --shape llava-7b`): tokens/s and MFU of a LLaVA-1.5-7B-shaped random-init model
on one GPU, without Ray, through the same `train_step` the workers run (bf16, frozen vision tower,
gradient checkpointing on the language model).
"""

from __future__ import annotations

import json
import time

import torch

from vlmtune_model.shapes import SHAPES, Shape
from vlmtune.train.flops import peak_flops, train_flops
from vlmtune.train.plain_engine import PlainEngine
from vlmtune.train.recompute import enable_checkpointing
from vlmtune.train.step import MicroBatch, train_step
from vlmtune_model.image import ImageSpec


TRAINABLE = ("projector", "language_model")  # the vision tower stays frozen, as in the paper's stages


def synthetic_batches(shape: Shape, micro_batch: int, seq_len: int, count: int, image_token_id: int,
                      dtype: torch.dtype, seed: int = 0) -> list[MicroBatch]:
    """Full-length samples: bos, the image's tokens, then text with every text token supervised."""
    generator = torch.Generator().manual_seed(seed)
    size, image_tokens = shape.vision["image_size"], shape.image_tokens
    batches = []
    for _ in range(count):
        text = torch.randint(100, shape.text["vocab_size"] - 100, (micro_batch, seq_len - image_tokens - 1),
                             generator=generator)
        ids = torch.cat([torch.ones(micro_batch, 1, dtype=torch.long),
                         torch.full((micro_batch, image_tokens), image_token_id), text], 1)
        labels = ids.clone()
        labels[:, : image_tokens + 1] = -100
        # uint8 as the data plane ships them: the step's normalization on the GPU is part of what is timed.
        pixels = torch.randint(0, 256, (micro_batch, size, size, 3), generator=generator, dtype=torch.uint8)
        batches.append(MicroBatch(ids, torch.ones_like(ids), labels, pixels, micro_batch, 0, 0, [],
                                  ImageSpec(size=size)))
    return batches


def build_shape_model(shape: Shape, device: str, dtype: torch.dtype, checkpointing: bool,
                      checkpoint_layers: int | None = None):
    from transformers import LlavaForConditionalGeneration

    from vlmtune_model.builder import shape_config

    config = shape_config(shape, image_token_id=shape.text["vocab_size"] - 1)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(default)
    model.model.vision_tower.requires_grad_(False)  # see TRAINABLE
    if checkpointing:
        enable_checkpointing(model, checkpoint_layers)
    return model, config.image_token_index


def time_steps(engine, batches: list[MicroBatch], accumulation: int, steps: int, warmup: int,
               device: torch.device, dtype: torch.dtype) -> float:
    """Mean seconds per optimizer step over `steps` timed steps after `warmup` untimed ones."""
    def run(count: int) -> None:
        for i in range(count):
            chunk = [batches[(i * accumulation + j) % len(batches)] for j in range(accumulation)]
            train_step(engine, chunk, device, dtype)

    run(warmup)
    _sync(device)
    started = time.perf_counter()
    run(steps)
    _sync(device)
    return (time.perf_counter() - started) / steps


def bench_gpu(shape_name: str, micro_batch: int, seq_len: int, accumulation: int, steps: int, warmup: int,
              checkpointing: bool = True, device_type: str = "cuda", checkpoint_layers: int | None = None) -> dict:
    shape = SHAPES[shape_name]
    device = torch.device(device_type)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, image_token_id = build_shape_model(shape, device_type, dtype, checkpointing, checkpoint_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    engine = PlainEngine(model.train(), optimizer, accumulation)
    batches = synthetic_batches(shape, micro_batch, seq_len, accumulation, image_token_id, dtype)
    seconds = time_steps(engine, batches, accumulation, steps, warmup, device, dtype)
    samples_per_s = micro_batch * accumulation / seconds
    flops = train_flops(shape, TRAINABLE).of_sample(seq_len) * samples_per_s
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_flops(name, "bf16" if dtype == torch.bfloat16 else "fp32")
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {
        "mode": "gpu", "device": name, "shape": shape.name, "seq_len": seq_len,
        "micro_batch": micro_batch, "accumulation": accumulation, "gradient_checkpointing": checkpointing,
        "checkpoint_layers": checkpoint_layers if checkpointing else 0,
        "trainable_params": sum(p.numel() for p in params), "seconds_per_step": seconds,
        "samples_per_s": samples_per_s, "tokens_per_s": samples_per_s * seq_len,
        "model_tflops_per_s": flops / 1e12, "peak_tflops_per_s": peak / 1e12 if peak else None,
        "mfu": flops / peak if peak else None, "max_memory_gib": memory,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def report(result: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(result, indent=2)
    if result["mode"] == "gpu":
        mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (unknown peak)"
        return (f"{result['shape']} on {result['device']}: {result['tokens_per_s']:.0f} tokens/s, "
                f"{result['model_tflops_per_s']:.0f} TFLOP/s, MFU {mfu}, peak memory {result['max_memory_gib'] or 0:.1f} GiB")
    return (f"Ray Train + DeepSpeed: {result['ray_deepspeed_s_per_sample'] * 1e3:.1f} ms/sample; plain torch: "
            f"{result['plain_s_per_sample'] * 1e3:.1f} ms/sample; overhead_ratio {result['overhead_ratio']:.3f}")
