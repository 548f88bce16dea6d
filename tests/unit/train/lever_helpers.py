"""Shared by the lever tests: the tiny model, ragged micro-batches, and an engine that keeps gradients."""

from __future__ import annotations

import torch

from vlmtune.bench.step import synthetic_batches
from vlmtune.train.levers import Levers
from vlmtune.train.recompute import enable_checkpointing
from vlmtune.train.step import MicroBatch, train_step
from vlmtune_model import build_tiny, set_trainable
from vlmtune_model.shapes import TINY

CPU = torch.device("cpu")


def tiny_model(checkpoint_layers: int | None = None, checkpointing: bool = False):
    model = build_tiny(seed=0).model.train()
    set_trainable(model, ["projector", "language_model"])
    if checkpointing or checkpoint_layers:
        enable_checkpointing(model, checkpoint_layers)
    return model


def ragged_micro(samples: int = 3, seq_len: int = 96, seed: int = 0) -> MicroBatch:
    """Right-padded samples of different lengths, each with an image and supervised text."""
    token = build_tiny(seed=0).model.config.image_token_index
    return synthetic_batches(TINY, samples, seq_len, 1, token, torch.float32, seed=seed, ragged=True)[0]


class GradientKeeper:
    """DeepSpeed's call surface around a plain model; `step` keeps the gradients instead of applying them."""

    def __init__(self, model: torch.nn.Module):
        self.module = model
        self.grads: dict[str, torch.Tensor] = {}

    def __call__(self, **inputs):
        return self.module(**inputs)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        self.grads = {name: p.grad.clone() for name, p in self.module.named_parameters() if p.grad is not None}
        self.module.zero_grad(set_to_none=True)


def step_and_grads(model, micro: MicroBatch, levers: Levers = Levers()):
    """(StepStats, gradients) of one micro-batch through the real `train_step`."""
    engine = GradientKeeper(model)
    stats = train_step(engine, [micro], CPU, torch.float32, levers)
    return stats, engine.grads


def assert_same_gradients(grads: dict, reference: dict, tolerance: float = 1e-5) -> None:
    assert grads.keys() == reference.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference[name], atol=tolerance, rtol=tolerance, msg=name)
