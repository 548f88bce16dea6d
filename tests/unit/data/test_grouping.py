"""Length-grouped micro-batches: a permutation, sorted within mega-batches, less padding."""

from __future__ import annotations

import random

import pytest

from vlmtune.data.grouping import length_grouped_batches, padding_fraction


def skewed_lengths(count: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    # Mostly short Vision-Flan-like answers, a tail of long LLaVA conversations.
    return [rng.randint(40, 80) if rng.random() < 0.8 else rng.randint(300, 2000) for _ in range(count)]


def test_every_index_appears_exactly_once():
    lengths = skewed_lengths(1003)
    batches = length_grouped_batches(lengths, batch_size=16, seed=3, megabatch=8)
    assert sorted(i for batch in batches for i in batch) == list(range(1003))
    assert all(len(batch) == 16 for batch in batches[:-1]) and 0 < len(batches[-1]) <= 16


def test_sorted_longest_first_within_each_megabatch():
    lengths = skewed_lengths(640)
    batches = length_grouped_batches(lengths, batch_size=8, seed=1, megabatch=4)
    for start in range(0, len(batches), 4):
        mega = [lengths[i] for batch in batches[start:start + 4] for i in batch]
        assert mega == sorted(mega, reverse=True)


def test_same_seed_same_batches_and_order_is_shuffled():
    lengths = skewed_lengths(256)
    assert length_grouped_batches(lengths, 8, 5, 4) == length_grouped_batches(lengths, 8, 5, 4)
    assert length_grouped_batches(lengths, 8, 5, 4) != length_grouped_batches(lengths, 8, 6, 4)
    first = [i for batch in length_grouped_batches(lengths, 8, 5, 1) for i in batch]
    assert first != list(range(256))


def test_grouping_pads_less_than_random_batches_and_less_with_wider_windows():
    lengths = skewed_lengths(2048)
    fractions = [padding_fraction(lengths, length_grouped_batches(lengths, 16, 0, megabatch=m)) for m in (1, 4, 16, 64)]
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[0] > 0.75 and fractions[-1] < 0.06  # random batches waste most slots on this skew


def test_padding_fraction_counts_pad_slots():
    assert padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(2 / 10)
    assert padding_fraction([], []) == 0.0


def test_rejects_empty_batches():
    with pytest.raises(ValueError, match="batch_size"):
        length_grouped_batches([1, 2], batch_size=0, seed=0, megabatch=1)
