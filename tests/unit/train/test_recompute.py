"""Selective activation checkpointing on the tiny model: which layers recompute, and the math is unchanged."""

from __future__ import annotations

import pytest
import torch

from vlmtune.bench.step import synthetic_batches
from vlmtune.train.recompute import decoder_layers, enable_checkpointing
from vlmtune.train.step import masked_loss
from vlmtune_model import build_tiny, set_trainable
from vlmtune_model.shapes import TINY


def tiny_model():
    model = build_tiny(seed=0).model.train()
    set_trainable(model, ["projector", "language_model"])
    return model


def loss_and_grads(model, micro) -> tuple[float, dict[str, torch.Tensor]]:
    micro = micro.to(torch.device("cpu"), torch.float32)  # normalizes the uint8 pixels, as the step does
    output = model(
        input_ids=micro.input_ids, attention_mask=micro.attention_mask, pixel_values=micro.pixels, use_cache=False
    )
    loss, _ = masked_loss(output.logits, micro.labels)
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def forwards_per_layer(model, micro) -> list[int]:
    """How often each decoder layer's MLP runs in one forward + backward: twice where it recomputes."""
    counts = [0] * len(decoder_layers(model))

    def counted(index, forward):
        def run(*args, **kwargs):
            counts[index] += 1
            return forward(*args, **kwargs)

        return run

    # Forward hooks did not fire in transformers' recompute; wrapping the forward counts both runs.
    for index, layer in enumerate(decoder_layers(model)):
        layer.mlp.forward = counted(index, layer.mlp.forward)
    loss_and_grads(model, micro)
    for layer in decoder_layers(model):
        del layer.mlp.forward
    return counts


@pytest.fixture(scope="module")
def micro():
    image_token = build_tiny(seed=0).model.config.image_token_index
    return synthetic_batches(TINY, micro_batch=2, seq_len=96, count=1, image_token_id=image_token, dtype=torch.float32)[
        0
    ]


def test_only_the_first_layers_recompute(micro):
    plain = tiny_model()
    assert forwards_per_layer(plain, micro) == [1, 1]
    first = tiny_model()
    assert enable_checkpointing(first, 1) == 1
    assert [layer.gradient_checkpointing for layer in decoder_layers(first)] == [True, False]
    assert forwards_per_layer(first, micro) == [2, 1]
    every = tiny_model()
    assert enable_checkpointing(every) == 2
    assert forwards_per_layer(every, micro) == [2, 2]


def test_loss_and_gradients_equal_those_without_checkpointing(micro):
    reference_loss, reference = loss_and_grads(tiny_model(), micro)
    selective = tiny_model()
    enable_checkpointing(selective, 1)
    loss, grads = loss_and_grads(selective, micro)
    assert loss == pytest.approx(reference_loss, abs=1e-6)
    assert grads.keys() == reference.keys() and len(grads) > 0
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference[name], atol=1e-6, rtol=1e-6, msg=name)


@pytest.mark.parametrize("layers", [0, 3])
def test_layer_counts_outside_the_model_are_refused(layers):
    with pytest.raises(ValueError, match="spec.training.checkpointLayers"):
        enable_checkpointing(tiny_model(), layers)
