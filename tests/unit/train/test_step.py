"""Collation and the masked loss; the step itself runs through DeepSpeed without Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlmtune.train.step import collate, kept_loss, masked_loss, supervised_positions, train_step
from vlmtune_model.image import ImageSpec
from vlmtune_model.tokenizer import IGNORE_INDEX


def ragged(rows):
    column = np.empty(len(rows), dtype=object)
    column[:] = [np.asarray(r, dtype=np.int32) for r in rows]
    return column


def numpy_batch(with_images=(True, False)):
    n = len(with_images)
    return {
        "key": np.asarray([f"k{i}" for i in range(n)]),
        "input_ids": ragged([[1, 2, 3], [1, 2]][:n]),
        "labels": ragged([[IGNORE_INDEX, 2, 3], [IGNORE_INDEX, IGNORE_INDEX]][:n]),
        "pixel_values": np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(n)]),
        "has_image": np.asarray(with_images),
        "truncated": np.asarray([False, True][:n]),
        "skip_reason": np.asarray(["", "image unreadable: OSError"][:n]),
    }


SPEC = ImageSpec(size=4)


def test_collate_right_pads_and_keeps_only_real_images():
    micro = collate(numpy_batch(), pad_token_id=0, image_spec=SPEC)
    assert micro.input_ids.tolist() == [[1, 2, 3], [1, 2, 0]]
    assert micro.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert micro.labels.tolist() == [[IGNORE_INDEX, 2, 3], [IGNORE_INDEX] * 3]
    assert micro.pixels.shape == (1, 4, 4, 3) and micro.pixels.dtype == torch.uint8
    assert (micro.samples, micro.skipped, micro.truncated) == (2, 1, 1)


def test_moving_a_micro_batch_normalizes_its_images_there():
    moved = collate(numpy_batch(), pad_token_id=0, image_spec=SPEC).to(torch.device("cpu"), torch.bfloat16)
    assert moved.pixels.shape == (1, 3, 4, 4) and moved.pixels.dtype == torch.bfloat16
    expected = (0 / 255 - torch.tensor(SPEC.mean)) / torch.tensor(SPEC.std)
    assert torch.allclose(moved.pixels[0, :, 0, 0].float(), expected, atol=1e-2)


def test_collate_without_images():
    assert collate(numpy_batch((False, False)), pad_token_id=0, image_spec=SPEC).pixels is None


def test_masked_loss_matches_cross_entropy_on_unmasked_tokens():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[IGNORE_INDEX, 3, IGNORE_INDEX, 5]])
    loss, count = masked_loss(logits, labels)
    expected = F.cross_entropy(logits[0, [0, 2]], torch.tensor([3, 5]))
    assert count == 2 and loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_fully_masked_batch_gives_zero_not_nan():
    loss, count = masked_loss(torch.randn(2, 3, 5), torch.full((2, 3), IGNORE_INDEX))
    assert count == 0 and loss.item() == 0.0


def test_logits_of_labelled_positions_give_the_full_loss_and_gradients():
    """The head runs on answer positions only: same loss and the same gradients as from every position's logits."""
    from vlmtune_model import build_tiny

    built = build_tiny(seed=0)
    image_id = built.model.config.image_token_index
    text = torch.randint(1000, 2000, (2, 12))
    ids = torch.cat([text[:, :3], torch.full((2, built.image_tokens), image_id), text[:, 3:]], 1)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, -3:], labels[1, -5:-2] = ids[0, -3:], ids[1, -5:-2]  # answers end at different places
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0  # the second row is right-padded
    pixels = torch.randn(2, 3, 64, 64)
    grads = []
    for kept in (False, True):
        built.model.zero_grad()
        if kept:
            keep = supervised_positions(labels)
            logits = built.model(input_ids=ids, attention_mask=mask, pixel_values=pixels, logits_to_keep=keep).logits
            loss, count = kept_loss(logits, labels, keep)
            assert logits.shape[0] == 6 == count  # 3 answer tokens per row, not 2 x 79 positions
        else:
            loss, count = masked_loss(
                built.model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits, labels
            )
        loss.backward()
        grads.append((loss.item(), count, [p.grad.clone() for p in built.model.parameters() if p.grad is not None]))
    (full, full_count, full_grads), (kept_value, kept_count, kept_grads) = grads
    assert kept_value == pytest.approx(full, rel=1e-5) and kept_count == full_count
    assert len(kept_grads) == len(full_grads)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(full_grads, kept_grads))


def test_a_micro_batch_without_labels_keeps_one_position_and_a_zero_loss():
    labels = torch.full((2, 5), IGNORE_INDEX)
    keep = supervised_positions(labels)
    assert keep.sum() == 1
    logits = torch.randn(1, 7, requires_grad=True)
    loss, count = kept_loss(logits, labels, keep)
    loss.backward()
    assert count == 0 and loss.item() == 0.0 and logits.grad is not None


@pytest.mark.integration
def test_train_step_runs_through_deepspeed_in_one_process(gloo_world):
    """The step function needs no Ray: one gloo process, real DeepSpeed ZeRO-2, loss goes down."""
    import deepspeed

    from vlmtune.data.preprocess import Preprocessor, ProcessorConfig
    from vlmtune_model import build_tiny

    built = build_tiny()
    optimizer = torch.optim.AdamW(built.model.parameters(), lr=1e-3)
    engine, *_ = deepspeed.initialize(
        model=built.model,
        optimizer=optimizer,
        dist_init_required=False,
        config={
            "train_batch_size": 4,
            "train_micro_batch_size_per_gpu": 2,
            "gradient_accumulation_steps": 2,
            "zero_optimization": {"stage": 2},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        },
    )
    pre = Preprocessor(ProcessorConfig("tiny", 64, 64, 160))
    import io
    import json

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    conv = json.dumps([{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "red"}])
    rows = [
        pre.process({"key": "k", "task": "t", "image": "x", "image_bytes": buffer.getvalue(), "conversations": conv})
        for _ in range(2)
    ]
    batch = {
        name: (
            np.stack([r[name] for r in rows])
            if name == "pixel_values"
            else ragged([r[name] for r in rows])
            if name in ("input_ids", "labels")
            else np.asarray([r[name] for r in rows])
        )
        for name in rows[0]
    }
    micro = collate(batch, built.tokenizer.pad_token_id, ImageSpec(size=64))
    losses = [train_step(engine, [micro, micro], torch.device("cpu"), torch.float32).loss for _ in range(5)]
    assert losses[-1] < losses[0]
    assert engine.global_steps == 5
