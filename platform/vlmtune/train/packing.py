"""Padding-free micro-batches: a right-padded micro-batch's samples concatenated into one row.

Position ids restart at each sample and no attention mask is passed: transformers reads the sample boundaries
from the position ids (flash_attention_2: varlen cu_seqlens; SDPA and flex_attention: a block-diagonal causal
mask). Each sample's first label is masked, since in its own row nothing precedes it: the loss sums the same
terms as the padded micro-batch. Images stay in row order, which is the order LLaVA scatters their features in.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from vlmtune_model.tokenizer import IGNORE_INDEX

if TYPE_CHECKING:
    from vlmtune.train.step import MicroBatch


def restarting_positions(lengths: torch.Tensor) -> torch.Tensor:
    """0..n-1 for each sample length n, concatenated: [3, 2] -> [0, 1, 2, 0, 1]."""
    total = int(lengths.sum())
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.arange(total, dtype=torch.long) - starts


def pack(micro: MicroBatch) -> MicroBatch:
    """The micro-batch as one row [1, total tokens] without padding (rows must be right-padded, as collated).

    Raises:
        ValueError: a row's attention mask is not ones followed by zeros.
    """
    mask = micro.attention_mask.bool()
    lengths = mask.sum(dim=1)
    if not bool((mask == (torch.arange(mask.shape[1]) < lengths[:, None])).all()):
        raise ValueError("packSamples needs right-padded rows (ones, then zeros, in each attention mask)")
    labels = micro.labels.clone()
    labels[:, 0] = IGNORE_INDEX
    return replace(micro, input_ids=micro.input_ids[mask][None], attention_mask=None, labels=labels[mask][None],
                   position_ids=restarting_positions(lengths)[None], lengths=lengths)
