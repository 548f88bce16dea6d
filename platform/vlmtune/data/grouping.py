"""Length-grouped micro-batches: fewer pad tokens without giving up a shuffled order.

The idea is LLaVA's `get_length_grouped_indices`: shuffle, cut the order into mega-batches of
a few micro-batches each, sort inside a mega-batch by length, and cut it into micro-batches.
Samples of similar length then share a micro-batch, while the mega-batch order stays random,
so the run still sees tasks mixed. Pure functions of their inputs: the same seed gives the same
order, which the sample plan needs for exact resume. Vectorised: 1.66M samples group in well
under a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def seeded(*parts: object) -> np.random.Generator:
    """A generator seeded from `parts` (e.g. the data seed and a task name), stable across platforms."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def length_grouped_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, megabatch: int) -> np.ndarray:
    """Positions of `lengths` in training order, grouped so consecutive runs of `batch_size` have similar length.

    Args:
        lengths: token length of each sample (an estimate is enough).
        batch_size: samples per micro-batch.
        rng: the shuffle's generator.
        megabatch: micro-batches per mega-batch, the window inside which samples are sorted.
            1 gives plain random batches; larger windows pad less but correlate neighbours more.
            LLaVA uses the data-parallel world size.

    Returns:
        A permutation of `range(len(lengths))`. Cut into runs of `batch_size`, it gives the micro-batches in
        training order; only the last may be shorter. Inside a mega-batch, samples run from longest to
        shortest, so its first micro-batch is its largest (an out-of-memory error shows up at the first step,
        not hours later).

    Raises:
        ValueError: when `batch_size` or `megabatch` is below 1.
    """
    if batch_size < 1 or megabatch < 1:
        raise ValueError(f"batch_size and megabatch must be >= 1, got {batch_size} and {megabatch}")
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    window = batch_size * megabatch
    whole = len(order) // window * window
    head = order[:whole].reshape(-1, window)
    head = np.take_along_axis(head, np.argsort(-lengths[head], axis=1, kind="stable"), axis=1)
    tail = order[whole:]
    tail = tail[np.argsort(-lengths[tail], kind="stable")]
    return np.concatenate([head.reshape(-1), tail])


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Pad tokens / token slots when every micro-batch is padded to its longest sample."""
    slots = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if len(batch))
    used = sum(lengths[i] for batch in batches for i in batch)
    return 0.0 if slots == 0 else (slots - used) / slots


def micro_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """`order` cut into runs of `batch_size` (the last may be shorter)."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
