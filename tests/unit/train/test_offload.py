"""Activation offloading: same gradients, parameters never copied, and only layers that keep activations offload."""

from __future__ import annotations

import pytest
import torch
from lever_helpers import CPU, assert_same_gradients, ragged_micro, step_and_grads, tiny_model

from vlmtune.train.levers import Levers
from vlmtune.train.offload import OffloadActivations
from vlmtune.train.step import masked_loss


def offloaded(model, micro) -> tuple[OffloadActivations, list[torch.Tensor]]:
    """Run forward + backward under the hooks; returns them and the tensors they sent to the host."""
    moved = micro.to(CPU, torch.float32)
    hooks = OffloadActivations(min_bytes=0)
    sources = []
    pack = hooks.pack_hook

    def recording(tensor):
        packed = pack(tensor)
        if packed[0] is not None:
            sources.append(tensor)
        return packed

    hooks.pack_hook = recording
    with hooks:
        output = model(
            input_ids=moved.input_ids, attention_mask=moved.attention_mask, pixel_values=moved.pixels, use_cache=False
        )
    masked_loss(output.logits, moved.labels)[0].backward()
    return hooks, sources


def test_gradients_equal_those_kept_on_the_device():
    micro = ragged_micro()
    _, reference = step_and_grads(tiny_model(checkpoint_layers=1), micro)
    _, grads = step_and_grads(tiny_model(checkpoint_layers=1), micro, Levers(offload_activations=True))
    assert_same_gradients(grads, reference, tolerance=1e-6)


def test_parameters_and_their_views_stay_put():
    model = tiny_model()
    hooks, sources = offloaded(model, ragged_micro())
    assert hooks.offloaded > 0 and hooks.offloaded_bytes == sum(t.numel() * t.element_size() for t in sources)
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert not [t.shape for t in sources if t.untyped_storage().data_ptr() in storages]


def test_recomputed_layers_offload_nothing_but_the_rest_do():
    micro = ragged_micro()
    none = offloaded(tiny_model(), micro)[0].offloaded_bytes
    first = offloaded(tiny_model(checkpoint_layers=1), micro)[0].offloaded_bytes
    every = offloaded(tiny_model(checkpointing=True), micro)[0].offloaded_bytes
    assert none > first > every > 0  # all-recomputed keeps only what lies outside the decoder layers


def test_small_tensors_stay_on_the_device():
    hooks = OffloadActivations(min_bytes=1024)
    weight = torch.nn.Parameter(torch.randn(4, 4))
    small, large = torch.randn(8, requires_grad=True), torch.randn(512, requires_grad=True)
    with hooks:
        loss = (small * small).sum() + (large * large).sum() + (weight.t() @ torch.randn(4)).sum()
    loss.backward()
    assert hooks.offloaded == 2 and hooks.offloaded_bytes == 2 * 512 * 4  # large is saved twice by its product
    assert large.grad is not None and torch.equal(large.grad, 2 * large.detach())


@pytest.mark.parametrize("layers", [1, 2])
def test_offloaded_step_matches_with_any_checkpointed_count(layers):
    micro = ragged_micro(seed=3)
    _, reference = step_and_grads(tiny_model(), micro)
    _, grads = step_and_grads(tiny_model(checkpoint_layers=layers), micro, Levers(offload_activations=True))
    assert_same_gradients(grads, reference, tolerance=1e-5)
