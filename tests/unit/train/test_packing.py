"""Packed rows: one padding-free row per micro-batch gives the padded rows' loss, gradients and token counts.

On CPU the packed row runs through SDPA with the block-diagonal causal mask transformers builds from the
restarting position ids (flash_attention_2 and flex_attention need a GPU here; see train/attention.py).
"""

from __future__ import annotations

import pytest
import torch
from lever_helpers import assert_same_gradients, ragged_micro, step_and_grads, tiny_model

from vlmtune.train.levers import Levers, prepare_model
from vlmtune.train.packing import restarting_positions
from vlmtune.train.step import MicroBatch
from vlmtune_model.tokenizer import IGNORE_INDEX


def hand_batch(mask_rows) -> MicroBatch:
    mask = torch.tensor(mask_rows)
    ids = torch.arange(1, mask.numel() + 1).reshape(mask.shape) * mask
    labels = torch.where(mask.bool(), ids + 100, torch.tensor(IGNORE_INDEX))
    return MicroBatch(ids, mask, labels, None, len(mask_rows), 0, 0, [])


def test_positions_restart_at_each_sample():
    assert restarting_positions(torch.tensor([3, 2, 1])).tolist() == [0, 1, 2, 0, 1, 0]


def test_pack_drops_padding_and_masks_each_first_label():
    packed = hand_batch([[1, 1, 1, 0], [1, 1, 0, 0]]).packed()
    assert packed.input_ids.tolist() == [[1, 2, 3, 5, 6]]
    assert packed.labels.tolist() == [[IGNORE_INDEX, 102, 103, IGNORE_INDEX, 106]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 0, 1]] and packed.attention_mask is None
    assert packed.sample_lengths().tolist() == [3, 2]


def test_left_padding_is_refused():
    with pytest.raises(ValueError, match="right-padded"):
        hand_batch([[0, 1, 1], [1, 1, 1]]).packed()


def test_packed_rows_give_the_padded_loss_gradients_and_counts():
    micro = ragged_micro()
    assert int(micro.attention_mask.sum()) < micro.attention_mask.numel()  # there is padding to drop
    stats, reference = step_and_grads(tiny_model(), micro)
    model = tiny_model()
    assert prepare_model(model, Levers(pack=True), "cpu") == "sdpa"
    packed_stats, grads = step_and_grads(model, micro, Levers(pack=True))
    assert packed_stats.loss == pytest.approx(stats.loss, rel=1e-5)
    assert (packed_stats.tokens, packed_stats.token_squares) == (stats.tokens, stats.token_squares)
    assert_same_gradients(grads, reference, tolerance=2e-5)


def test_packed_rows_with_the_chunked_loss():
    micro = ragged_micro(seed=1)
    stats, reference = step_and_grads(tiny_model(), micro)
    both = Levers(pack=True, chunked_loss=True)
    model = tiny_model()
    prepare_model(model, both, "cpu")
    packed_stats, grads = step_and_grads(model, micro, both)
    assert packed_stats.loss == pytest.approx(stats.loss, rel=1e-5)
    assert_same_gradients(grads, reference, tolerance=2e-5)


def test_samples_do_not_attend_across_the_row():
    """Without the sample boundaries (one long causal sequence), the packed loss would differ."""
    micro = ragged_micro(seed=2)
    model = tiny_model()
    packed = micro.packed()
    crossing = MicroBatch(
        packed.input_ids,
        torch.ones_like(packed.input_ids),
        packed.labels,
        micro.pixels,
        micro.samples,
        0,
        0,
        [],
        micro.image_spec,
    )
    stats, _ = step_and_grads(tiny_model(), micro)
    crossed, _ = step_and_grads(model, crossing)
    assert crossed.loss != pytest.approx(stats.loss, rel=1e-4)
