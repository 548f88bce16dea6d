"""A plain torch engine with DeepSpeed's call surface (forward, backward, step at accumulation boundaries).

It lets `train_step` run the same math without DeepSpeed: the baseline of `vlmtune bench step`, and
single-GPU measurements where DeepSpeed's fp32 master weights would not fit.
"""

from __future__ import annotations

import torch


class PlainEngine:
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        accumulation: int,
        clip: float = 1.0,
        scheduler=None,
    ):
        self.module, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.accumulation, self.clip = accumulation, clip
        self.micro_steps = 0
        self.global_steps = 0

    def __call__(self, **inputs):
        return self.module(**inputs)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.accumulation).backward()

    def step(self) -> None:
        self.micro_steps += 1
        if self.micro_steps % self.accumulation:
            return
        if self.clip:
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]], self.clip
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_steps += 1
