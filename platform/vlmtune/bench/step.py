"""`vlmtune bench step`: what the training path costs, measured against baselines in the same process.

CPU mode: seconds per sample of the Ray Train + DeepSpeed path (one worker, ZeRO-2) against a plain
single-process torch loop doing the same math on the same tiny model and batches -> `overhead_ratio`.

GPU mode (`--device cuda --shape llava-7b`): tokens/s and MFU of a LLaVA-1.5-7B-shaped random-init model
on one GPU, without Ray, through the same `train_step` the workers run (bf16, frozen vision tower,
gradient checkpointing on the language model), with the levers of `vlmtune.train.levers` as flags.
`--ragged` draws each sample's length (the padding real micro-batches carry); MFU and tokens/s count
real tokens only, so padding shows up as lost throughput and packed rows as regained throughput.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch

from vlmtune.train.flops import peak_flops, train_flops
from vlmtune.train.levers import Levers, prepare_model
from vlmtune.train.plain_engine import PlainEngine
from vlmtune.train.recompute import enable_checkpointing
from vlmtune.train.step import MicroBatch, train_step
from vlmtune_model.image import ImageSpec
from vlmtune_model.shapes import SHAPES, Shape
from vlmtune_model.tokenizer import IGNORE_INDEX

TRAINABLE = ("projector", "language_model")  # the vision tower stays frozen, as in the paper's stages


def synthetic_batches(
    shape: Shape,
    micro_batch: int,
    seq_len: int,
    count: int,
    image_token_id: int,
    dtype: torch.dtype,
    seed: int = 0,
    ragged: bool = False,
) -> list[MicroBatch]:
    """Samples of bos, the image's tokens, then text with every text token supervised: all `seq_len` long, or
    (`ragged`) each as long as a uniform draw between the image's tokens plus 2 and `seq_len`, right-padded."""
    generator = torch.Generator().manual_seed(seed)
    size, image_tokens = shape.vision["image_size"], shape.image_tokens
    batches = []
    for _ in range(count):
        text = torch.randint(
            100, shape.text["vocab_size"] - 100, (micro_batch, seq_len - image_tokens - 1), generator=generator
        )
        text[text == image_token_id] = 100  # one image's worth of image tokens per sample, no more
        ids = torch.cat(
            [
                torch.ones(micro_batch, 1, dtype=torch.long),
                torch.full((micro_batch, image_tokens), image_token_id),
                text,
            ],
            1,
        )
        labels = ids.clone()
        labels[:, : image_tokens + 1] = IGNORE_INDEX
        attention = torch.ones_like(ids)
        if ragged:
            lengths = torch.randint(image_tokens + 2, seq_len + 1, (micro_batch,), generator=generator)
            padding = torch.arange(seq_len) >= lengths[:, None]
            ids[padding], labels[padding], attention[padding] = 0, IGNORE_INDEX, 0
        # uint8 as the data plane ships them: the step's normalization on the GPU is part of what is timed.
        pixels = torch.randint(0, 256, (micro_batch, size, size, 3), generator=generator, dtype=torch.uint8)
        batches.append(MicroBatch(ids, attention, labels, pixels, micro_batch, 0, 0, [], ImageSpec(size=size)))
    return batches


def build_shape_model(
    shape: Shape,
    device: str,
    dtype: torch.dtype,
    checkpointing: bool,
    checkpoint_layers: int | None = None,
    levers: Levers = Levers(),
    image_token_id: int | None = None,
    **text,
):
    """A random-init model of `shape` on `device`, frozen vision tower, checkpointing and levers applied.

    Returns:
        (model, its image token id, the language model's attention kernel).
    """
    from transformers import LlavaForConditionalGeneration

    from vlmtune_model.builder import shape_config

    token = shape.text["vocab_size"] - 1 if image_token_id is None else image_token_id
    config = shape_config(shape, image_token_id=token, **text)
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
    kernel = prepare_model(model, levers, torch.device(device).type)
    return model, config.image_token_index, kernel


def time_steps(
    engine,
    batches: list[MicroBatch],
    accumulation: int,
    steps: int,
    warmup: int,
    device: torch.device,
    dtype: torch.dtype,
    levers: Levers = Levers(),
) -> float:
    """Mean seconds per optimizer step over `steps` timed steps after `warmup` untimed ones."""

    def run(count: int) -> None:
        for i in range(count):
            chunk = [batches[(i * accumulation + j) % len(batches)] for j in range(accumulation)]
            train_step(engine, chunk, device, dtype, levers)

    run(warmup)
    _sync(device)
    started = time.perf_counter()
    run(steps)
    _sync(device)
    return (time.perf_counter() - started) / steps


def bench_gpu(
    shape_name: str,
    micro_batch: int,
    seq_len: int,
    accumulation: int,
    steps: int,
    warmup: int,
    checkpointing: bool = True,
    device_type: str = "cuda",
    checkpoint_layers: int | None = None,
    levers: Levers = Levers(),
    ragged: bool = False,
) -> dict:
    """Tokens/s, model TFLOP/s, MFU and peak memory of `train_step` on one device, without Ray or DeepSpeed.

    Raises:
        KeyError: an unknown shape.
        ValueError: checkpoint layers outside the model, or an attention kernel that cannot run here.
    """
    shape = SHAPES[shape_name]
    device = torch.device(device_type)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, image_token_id, kernel = build_shape_model(
        shape, device_type, dtype, checkpointing, checkpoint_layers, levers
    )
    figures = measure_step(
        model,
        shape,
        image_token_id,
        device,
        StepShape(micro_batch, seq_len, accumulation),
        steps,
        warmup,
        levers,
        ragged,
    )
    return {
        "mode": "gpu",
        "shape": shape.name,
        "seq_len": seq_len,
        "micro_batch": micro_batch,
        "accumulation": accumulation,
        "gradient_checkpointing": checkpointing,
        "checkpoint_layers": (checkpoint_layers or shape.text["num_hidden_layers"]) if checkpointing else 0,
        **levers.describe(),
        "attention": kernel,
        "ragged": ragged,
        **figures,
    }


@dataclass(frozen=True)
class StepShape:
    micro_batch: int
    seq_len: int
    accumulation: int


def measure_step(
    model,
    shape: Shape,
    image_token_id: int,
    device: torch.device,
    step: StepShape,
    steps: int,
    warmup: int,
    levers: Levers = Levers(),
    ragged: bool = False,
) -> dict:
    """Time `train_step` on a built model with a plain torch engine (fused AdamW on GPUs) and synthetic batches.

    Returns:
        seconds_per_step, samples_per_s, tokens_per_s (real tokens), model_tflops_per_s, peak_tflops_per_s,
        mfu (None where the peak is unknown), max_memory_gib (GPUs), padding_fraction, trainable_params, device.
    """
    dtype = next(model.parameters()).dtype
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    engine = PlainEngine(model.train(), optimizer, step.accumulation)
    batches = synthetic_batches(
        shape, step.micro_batch, step.seq_len, step.accumulation, image_token_id, dtype, ragged=ragged
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = time_steps(engine, batches, step.accumulation, steps, warmup, device, dtype, levers)
    work = step_work(shape, batches)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_flops(name, "bf16" if dtype == torch.bfloat16 else "fp32")
    return {
        "device": name,
        "trainable_params": sum(p.numel() for p in params),
        "seconds_per_step": seconds,
        "samples_per_s": step.micro_batch * step.accumulation / seconds,
        "tokens_per_s": work["tokens"] / seconds,
        "model_tflops_per_s": work["flops"] / seconds / 1e12,
        "peak_tflops_per_s": peak / 1e12 if peak else None,
        "mfu": work["flops"] / seconds / peak if peak else None,
        "padding_fraction": work["padding_fraction"],
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }


def step_work(shape: Shape, batches: list[MicroBatch]) -> dict:
    """Real tokens, model FLOPs and the padding share of one optimizer step over `batches`."""
    flops = train_flops(shape, TRAINABLE)
    lengths = torch.cat([micro.sample_lengths() for micro in batches])
    slots = sum(micro.input_ids.numel() for micro in batches)
    tokens, squares = int(lengths.sum()), int((lengths**2).sum())
    return {
        "tokens": tokens,
        "flops": flops.of_batch(tokens, squares, len(lengths)),
        "padding_fraction": 1 - tokens / slots,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _levers_text(result: dict) -> str:
    on = [name for name in ("chunked_loss", "pack_samples", "offload_activations", "compile_layers") if result[name]]
    return (
        f"micro-batch {result['micro_batch']} x {result['accumulation']}, checkpointed layers "
        f"{result['checkpoint_layers']}, attention {result['attention']}"
        + (f", padding {result['padding_fraction']:.0%}" if result["ragged"] else "")
        + (", " + ", ".join(on) if on else "")
    )


def report(result: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(result, indent=2)
    if result["mode"] == "gpu":
        mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (unknown peak)"
        return (
            f"{result['shape']} on {result['device']}: {result['tokens_per_s']:.0f} tokens/s, "
            f"{result['model_tflops_per_s']:.0f} TFLOP/s, MFU {mfu}, "
            f"peak memory {result['max_memory_gib'] or 0:.1f} GiB"
            f" ({_levers_text(result)})"
        )
    return (
        f"Ray Train + DeepSpeed: {result['ray_deepspeed_s_per_sample'] * 1e3:.1f} ms/sample; plain torch: "
        f"{result['plain_s_per_sample'] * 1e3:.1f} ms/sample; overhead_ratio {result['overhead_ratio']:.3f}"
    )
