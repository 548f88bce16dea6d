"""The chunked loss: the loss and gradients of the full logits, without ever holding them."""

from __future__ import annotations

import pytest
import torch
from lever_helpers import assert_same_gradients, ragged_micro, step_and_grads, tiny_model

from vlmtune.train.chunk_size import MIN_CHUNK_ROWS, chunk_rows
from vlmtune.train.chunked_loss import chunked_loss
from vlmtune.train.levers import Levers
from vlmtune.train.step import masked_loss
from vlmtune_model.tokenizer import IGNORE_INDEX

VOCAB, HIDDEN = 50, 8


def head_and_inputs(seed: int = 0):
    torch.manual_seed(seed)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
    hidden = torch.randn(2, 9, HIDDEN, requires_grad=True)
    labels = torch.randint(0, VOCAB, (2, 9))
    labels[0, :3] = IGNORE_INDEX
    labels[1, 5:] = IGNORE_INDEX
    return head, hidden, labels


def test_equals_the_masked_loss_of_full_logits_with_its_gradients():
    head, hidden, labels = head_and_inputs()
    reference, count = masked_loss(head(hidden), labels)
    reference.backward()
    expected = (hidden.grad.clone(), head.weight.grad.clone())
    hidden.grad, head.weight.grad = None, None
    loss, chunked_count = chunked_loss(hidden, labels, head, rows_per_chunk=3)  # 10 supervised: four chunks
    loss.backward()
    assert chunked_count == count == 10
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    torch.testing.assert_close(hidden.grad, expected[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(head.weight.grad, expected[1], atol=1e-6, rtol=1e-5)


def test_no_logits_are_kept_for_backward_and_each_recompute_holds_one_chunk():
    head, hidden, labels = head_and_inputs()
    calls = []
    head.register_forward_hook(lambda _m, _i, output: calls.append(tuple(output.shape)))
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss, _ = chunked_loss(hidden, labels, head, rows_per_chunk=4)
    assert max(saved) < 10 * VOCAB  # full logits would be 2 x 9 x 50, the supervised ones 10 x 50: none is saved
    assert calls == [(4, VOCAB), (4, VOCAB), (2, VOCAB)]
    loss.backward()  # each chunk recomputes its logits alone
    assert calls[3:] == [(2, VOCAB), (4, VOCAB), (4, VOCAB)]


def test_nothing_supervised_gives_a_connected_zero():
    head, hidden, labels = head_and_inputs()
    loss, count = chunked_loss(hidden, torch.full_like(labels, IGNORE_INDEX), head, rows_per_chunk=4)
    loss.backward()
    assert count == 0 and loss.item() == 0.0
    assert head.weight.grad is not None and not head.weight.grad.any()


def test_chunks_hold_a_bounded_number_of_logits():
    assert chunk_rows(32_064) == 2**26 // 32_064 and chunk_rows(32_064) * 32_064 <= 2**26
    assert chunk_rows(10**7) == MIN_CHUNK_ROWS


def test_the_train_step_gives_the_loss_and_gradients_of_full_logits():
    micro = ragged_micro()
    stats, reference = step_and_grads(tiny_model(), micro)
    chunked_stats, grads = step_and_grads(tiny_model(), micro, Levers(chunked_loss=True))
    assert chunked_stats.loss == pytest.approx(stats.loss, rel=1e-6)
    assert (chunked_stats.tokens, chunked_stats.token_squares) == (stats.tokens, stats.token_squares)
    assert_same_gradients(grads, reference)


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("lora", [pytest.param(True, marks=pytest.mark.slow), False], ids=["lora", "full"])
def test_zero3_gathers_the_head_through_its_module_call(gloo_world, lora):
    """ZeRO-3 partitions the head's weight; the chunked loss calls the head as a module, so DeepSpeed's hooks
    gather it for the forward, each recomputation and its backward. With LoRA adapters training (head frozen)
    and with the language model training (head tied to the trained embeddings), three optimizer steps give the
    same losses as the full logits do. The LoRA case is `slow` (each case builds two ZeRO-3 engines)."""
    import deepspeed
    from lever_helpers import CPU

    from vlmtune.train.step import train_step
    from vlmtune_model import LoraSettings, apply_lora, build_tiny, set_trainable

    micro = ragged_micro(seed=4)

    def losses(levers: Levers) -> list[float]:
        built = build_tiny(seed=0)
        if lora:
            built = apply_lora(built, LoraSettings(rank=4, alpha=8, dropout=0.0))
        set_trainable(built.model, ["projector", "language_model"])
        params = [p for p in built.model.parameters() if p.requires_grad]
        engine, *_ = deepspeed.initialize(
            model=built.model,
            optimizer=torch.optim.AdamW(params, lr=1e-2),
            dist_init_required=False,
            config={
                "train_batch_size": 3,
                "train_micro_batch_size_per_gpu": 3,
                "gradient_accumulation_steps": 1,
                "zero_optimization": {"stage": 3},
                "zero_allow_untested_optimizer": True,
                "steps_per_print": 10**9,
            },
        )
        assert engine.module.lm_head.weight.numel() == 0  # partitioned outside the forward
        return [train_step(engine, [micro], CPU, torch.float32, levers).loss for _ in range(3)]

    full, chunked = losses(Levers()), losses(Levers(chunked_loss=True))
    assert full[0] != pytest.approx(full[-1], rel=1e-3)  # it trained
    assert chunked == pytest.approx(full, rel=1e-5)
