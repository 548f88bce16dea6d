"""Regional compilation: each decoder layer compiled in place; the compiled step computes the eager one's math.

The numerics test compiles with inductor (g++ on CPU): it is marked slow, the wiring tests are not.
"""

from __future__ import annotations

import pytest
import torch
from lever_helpers import assert_same_gradients, ragged_micro, step_and_grads, tiny_model

from vlmtune.train.levers import Levers, prepare_model
from vlmtune.train.recompute import decoder_layers
from vlmtune.train.regional_compile import compile_layers, is_compiled


def test_every_decoder_layer_is_compiled_in_place():
    model = tiny_model()
    keys = list(model.state_dict())
    assert not any(is_compiled(layer) for layer in decoder_layers(model))
    assert compile_layers(model) == 2
    assert all(is_compiled(layer) for layer in decoder_layers(model))
    assert list(model.state_dict()) == keys  # names, checkpoints and DeepSpeed's hooks are unchanged
    assert not is_compiled(model.model.vision_tower)


def test_the_lever_compiles_and_the_default_does_not():
    eager, compiled = tiny_model(), tiny_model()
    prepare_model(eager, Levers(), "cpu")
    prepare_model(compiled, Levers(compile_layers=True), "cpu")
    assert not any(is_compiled(layer) for layer in decoder_layers(eager))
    assert all(is_compiled(layer) for layer in decoder_layers(compiled))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compiled_layers_give_the_eager_loss_and_gradients_with_one_graph():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    micro = ragged_micro()
    stats, reference = step_and_grads(tiny_model(checkpoint_layers=1), micro)
    model = tiny_model(checkpoint_layers=1)
    levers = Levers(compile_layers=True, chunked_loss=True, offload_activations=True)
    prepare_model(model, levers, "cpu")
    compiled, grads = step_and_grads(model, micro, levers)
    assert compiled.loss == pytest.approx(stats.loss, rel=1e-5)
    assert_same_gradients(grads, reference, tolerance=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # one graph serves both layers
