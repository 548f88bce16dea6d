"""`vlmtune bench data`: preprocessing throughput against LLaVA's loader and a bare lower bound.

All three paths run in this process on the same generated JPEGs, with torch held to one thread,
taking turns chunk by chunk so that noise from other load on the machine falls on all three
alike. Throughput is samples per CPU-second (process CPU time across all threads),
i.e. samples/s per core: a figure that does not depend on how many cores the machine has.

- vlmtune: `Preprocessor.__call__` on Ray-style numpy batches (decode, pad to square, resize to
  uint8, vicuna_v1 tokens and labels with image tokens expanded); normalization happens in the
  train step on the accelerator, so it is not CPU work here;
- llava: LLaVA-1.5's LazySupervisedDataset + collator through a torch DataLoader (num_workers=0),
  which decodes with PIL, resizes and normalizes to float32 on the CPU;
- bound: decode + pad + resize to uint8 and nothing else, with the cheapest primitives we have
  (libjpeg-turbo decode at reduced DCT scale, resizing only the image's part of the padded square):
  what any path must spend on pixels on the CPU. Its ratio to vlmtune is therefore vlmtune's
  overhead beyond the image work (records, tokens, labels, batching).

Padding figures use the demo suite's length distribution (its instructions and answers, plus
the image tokens) under length-grouped vs random micro-batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from vlmtune.bench.samples import demo_conversations, generate_records
from vlmtune.data.grouping import length_grouped_order, micro_batches, padding_fraction, seeded
from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
from vlmtune_model.image import ImageSpec, square_pixels
from vlmtune_model.template import normalize_turns, tokenize_conversation


@dataclass(frozen=True)
class DataBenchConfig:
    samples: int = 256
    image_size: int = 336  # the CLIP ViT-L/14-336 tower of LLaVA-1.5 and Vision-Flan
    image_tokens: int = 576  # (336 / 14) ** 2 patches
    max_length: int = 2048
    batch_size: int = 16  # LLaVA-1.5's per-device batch size
    megabatch: int = 8  # micro-batches sorted together (LLaVA: the world size, 8 GPUs)
    padding_per_task: int = 64  # the demo suite's default instances per task
    seed: int = 0
    warmup: int = 8


def run_data_bench(config: DataBenchConfig) -> dict:
    """Measure the three paths and the padding of grouped vs random batches; see the module doc."""
    import torch

    records = generate_records(config.samples, seed=config.seed)
    processor_config = ProcessorConfig("tiny", config.image_size, config.image_tokens, config.max_length)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures = _measure(
            {
                "vlmtune": _vlmtune_path(processor_config, config.batch_size),
                "llava": _llava_path(config),
                "bound": _bound_path(config.image_size, config.batch_size),
            },
            records,
            chunk=2 * config.batch_size,
            warmup=config.warmup,
        )
    finally:
        torch.set_num_threads(threads)
    vlmtune, llava, bound = (figures[name]["samples_per_s_per_core"] for name in ("vlmtune", "llava", "bound"))
    return {
        "samples": config.samples,
        "ratio_vs_llava": vlmtune / llava,
        "ratio_vs_bound": bound / vlmtune,
        **padding_figures(config),
        **figures,
        "config": asdict(config),
    }


def padding_figures(config: DataBenchConfig) -> dict:
    """Padding fraction of grouped and random micro-batches over the demo length distribution."""
    lengths = np.asarray(demo_lengths(config))
    grouped = micro_batches(
        length_grouped_order(lengths, config.batch_size, seeded(config.seed), config.megabatch), config.batch_size
    )
    shuffled = micro_batches(
        length_grouped_order(lengths, config.batch_size, seeded(config.seed), 1), config.batch_size
    )
    return {
        "padding_fraction_grouped": padding_fraction(lengths, grouped),
        "padding_fraction_random": padding_fraction(lengths, shuffled),
        "lengths": {
            "samples": len(lengths),
            "min": int(lengths.min()),
            "p50": int(np.median(lengths)),
            "max": int(lengths.max()),
        },
    }


def demo_lengths(config: DataBenchConfig) -> list[int]:
    tokenizer = ProcessorConfig("tiny", config.image_size, config.image_tokens, config.max_length).load_tokenizer()
    return [
        len(
            tokenize_conversation(
                normalize_turns(turns), tokenizer, image_tokens=config.image_tokens, max_length=config.max_length
            ).input_ids
        )
        for turns in demo_conversations(config.padding_per_task, seed=config.seed)
    ]


def report(result: dict, as_json: bool) -> str:
    """The result as one JSON object, or as lines for a terminal."""
    if as_json:
        return json.dumps(result, indent=1)
    lines = [f"{result['samples']} generated samples at {result['config']['image_size']} px, samples/s per CPU core:"]
    for name, label in (
        ("vlmtune", "vlmtune preprocess"),
        ("llava", "LLaVA Dataset+DataLoader"),
        ("bound", "decode+pad+resize (uint8)"),
    ):
        lines.append(f"  {label:<30} {result[name]['samples_per_s_per_core']:8.1f}")
    lines += [
        f"ratio_vs_llava   {result['ratio_vs_llava']:.2f}  (vlmtune / LLaVA throughput; target >= 3.5)",
        f"ratio_vs_bound   {result['ratio_vs_bound']:.2f}  (vlmtune time / lower-bound time; target <= 1.2)",
        f"padding grouped  {result['padding_fraction_grouped']:.4f}  (target <= 0.05)",
        f"padding random   {result['padding_fraction_random']:.4f}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- the three paths
# Each builder returns a function that processes all records once; setup (tokenizer and processor
# loading) stays outside the timed region.


def _vlmtune_path(config: ProcessorConfig, batch_size: int) -> Callable[[list[dict]], None]:
    preprocessor = Preprocessor(config)

    def run_all(chunk: list[dict]) -> None:
        for start in range(0, len(chunk), batch_size):
            preprocessor(_numpy_batch(chunk[start : start + batch_size]))

    return run_all


def _llava_path(config: DataBenchConfig) -> Callable[[list[dict]], None]:
    from vlmtune.bench.llava_reference import llava_loader

    tokenizer = ProcessorConfig("tiny", config.image_size, config.image_tokens, config.max_length).load_tokenizer()
    tokenizer.model_max_length = config.max_length  # LLaVA sets it from --model_max_length

    def run_all(chunk: list[dict]) -> None:
        for _ in llava_loader(chunk, tokenizer, config.image_size, config.batch_size):
            pass

    return run_all


def _bound_path(size: int, batch_size: int) -> Callable[[list[dict]], None]:
    spec = ImageSpec(size=size)

    def run_all(chunk: list[dict]) -> None:
        for start in range(0, len(chunk), batch_size):
            # Outputs are kept per batch, as any consumer holds them; nothing else is done.
            batch = [square_pixels(record["image_bytes"], spec) for record in chunk[start : start + batch_size]]
            del batch

    return run_all


def _measure(
    paths: dict[str, Callable[[list[dict]], None]], records: list[dict], *, chunk: int, warmup: int
) -> dict[str, dict]:
    for run_all in paths.values():
        run_all(records[:warmup])
    cpu = dict.fromkeys(paths, 0.0)
    wall = dict.fromkeys(paths, 0.0)
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        for name, run_all in paths.items():
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            run_all(part)
            cpu[name] += time.process_time() - cpu_start
            wall[name] += time.perf_counter() - wall_start
    return {
        name: {"samples_per_s_per_core": len(records) / cpu[name], "cpu_s": cpu[name], "wall_s": wall[name]}
        for name in paths
    }


def _numpy_batch(records: list[dict]) -> dict[str, np.ndarray]:
    """The batch format Ray Data hands `map_batches(batch_format="numpy")`."""
    batch = {}
    for name in ("key", "task", "image", "image_bytes", "conversations"):
        column = np.empty(len(records), dtype=object)
        column[:] = [record[name] for record in records]
        batch[name] = column
    return batch
