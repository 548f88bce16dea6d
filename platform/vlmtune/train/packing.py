"""Padding-free micro-batches: a right-padded micro-batch's samples concatenated into one row.

Position ids restart at each sample and no attention mask is passed: transformers reads the sample boundaries
from the position ids (flash_attention_2: varlen cu_seqlens; SDPA and flex_attention: a block-diagonal causal
mask). Each sample's first label is masked, since in its own row nothing precedes it: the loss sums the same
terms as the padded micro-batch. Images stay in row order, which is the order LLaVA scatters their features in.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vlmtune_model.tokenizer import IGNORE_INDEX


class PackedRow(NamedTuple):
    """A micro-batch's samples as one row [1, total tokens]."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    lengths: torch.Tensor
    """Each sample's token count."""


def restarting_positions(lengths: torch.Tensor) -> torch.Tensor:
    """0..n-1 for each sample length n, concatenated: [3, 2] -> [0, 1, 2, 0, 1]."""
    total = int(lengths.sum())
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.arange(total, dtype=torch.long) - starts


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> PackedRow:
    """Right-padded rows [samples, width] as one row without padding (`MicroBatch.packed` applies it).

    Raises:
        ValueError: a row's attention mask is not ones followed by zeros.
    """
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if not bool((mask == (torch.arange(mask.shape[1]) < lengths[:, None])).all()):
        raise ValueError("packSamples needs right-padded rows (ones, then zeros, in each attention mask)")
    labels = labels.clone()
    labels[:, 0] = IGNORE_INDEX
    return PackedRow(input_ids[mask][None], labels[mask][None], restarting_positions(lengths)[None], lengths)
