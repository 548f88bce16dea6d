"""Length-grouped micro-batches: a permutation, sorted within mega-batches, less padding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vlmtune.data.grouping import length_grouped_order, micro_batches, padding_fraction, seeded


def skewed_lengths(count: int, seed: int = 0) -> np.ndarray:
    rng = random.Random(seed)
    # Mostly short Vision-Flan-like answers, a tail of long LLaVA conversations.
    return np.asarray([rng.randint(40, 80) if rng.random() < 0.8 else rng.randint(300, 2000) for _ in range(count)])


def grouped(lengths, batch_size, seed, megabatch):
    return micro_batches(length_grouped_order(lengths, batch_size, seeded(seed), megabatch), batch_size)


def test_every_index_appears_exactly_once():
    lengths = skewed_lengths(1003)
    batches = grouped(lengths, 16, 3, 8)
    assert sorted(int(i) for batch in batches for i in batch) == list(range(1003))
    assert all(len(batch) == 16 for batch in batches[:-1]) and 0 < len(batches[-1]) <= 16


def test_sorted_longest_first_within_each_megabatch():
    lengths = skewed_lengths(640)
    batches = grouped(lengths, 8, 1, 4)
    for start in range(0, len(batches), 4):
        mega = [int(lengths[i]) for batch in batches[start : start + 4] for i in batch]
        assert mega == sorted(mega, reverse=True)


def test_same_seed_same_batches_and_order_is_shuffled():
    lengths = skewed_lengths(256)
    order = length_grouped_order(lengths, 8, seeded(5), 4)
    assert np.array_equal(order, length_grouped_order(lengths, 8, seeded(5), 4))
    assert not np.array_equal(order, length_grouped_order(lengths, 8, seeded(6), 4))
    assert not np.array_equal(length_grouped_order(lengths, 8, seeded(5), 1), np.arange(256))


def test_grouping_pads_less_than_random_batches_and_less_with_wider_windows():
    lengths = skewed_lengths(2048)
    fractions = [padding_fraction(lengths, grouped(lengths, 16, 0, megabatch=m)) for m in (1, 4, 16, 64)]
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[0] > 0.75 and fractions[-1] < 0.06  # random batches waste most slots on this skew


def test_grouping_a_vision_flan_sized_epoch_is_fast_and_small():
    lengths = np.random.default_rng(0).integers(60, 2000, 1_664_261).astype(np.int32)
    order = length_grouped_order(lengths, 16, seeded(0), 8)
    assert order.dtype == np.int64 and len(order) == len(lengths)
    assert np.array_equal(np.sort(order[:1000]), np.unique(order[:1000]))


def test_padding_fraction_counts_pad_slots():
    assert padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(2 / 10)
    assert padding_fraction([], []) == 0.0


def test_rejects_empty_batches():
    with pytest.raises(ValueError, match="batch_size"):
        length_grouped_order(np.asarray([1, 2]), 0, seeded(0), 1)
