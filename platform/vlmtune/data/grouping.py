"""Length-grouped micro-batches: fewer pad tokens without giving up a shuffled order.

The idea is LLaVA's `get_length_grouped_indices`: shuffle, cut the order into mega-batches of
a few micro-batches each, sort inside a mega-batch by length, and cut it into micro-batches.
Samples of similar length then share a micro-batch, while the mega-batch order stays random,
so the run still sees tasks mixed. Pure functions of their inputs: the same seed gives the same
batches, which the sample plan needs for exact resume.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int,
                           megabatch: int) -> list[list[int]]:
    """Indices of `lengths` grouped into micro-batches of similar length.

    Args:
        lengths: token length of each sample (an estimate is enough).
        batch_size: samples per micro-batch.
        seed: shuffle seed.
        megabatch: micro-batches per mega-batch, the window inside which samples are sorted.
            1 gives plain random batches; larger windows pad less but correlate neighbours more.
            LLaVA uses the data-parallel world size.

    Returns:
        Micro-batches in training order; every index appears exactly once. Inside a mega-batch,
        samples run from longest to shortest, so its first micro-batch is its largest (an
        out-of-memory error shows up at the first step, not hours later). Only the last
        micro-batch may be shorter than `batch_size`.

    Raises:
        ValueError: when `batch_size` or `megabatch` is below 1.
    """
    if batch_size < 1 or megabatch < 1:
        raise ValueError(f"batch_size and megabatch must be >= 1, got {batch_size} and {megabatch}")
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    window = batch_size * megabatch
    batches = []
    for start in range(0, len(order), window):
        mega = sorted(order[start:start + window], key=lambda index: lengths[index], reverse=True)
        batches.extend(mega[i:i + batch_size] for i in range(0, len(mega), batch_size))
    return batches


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Pad tokens / token slots when every micro-batch is padded to its longest sample."""
    slots = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    used = sum(lengths[i] for batch in batches for i in batch)
    return 0.0 if slots == 0 else (slots - used) / slots
