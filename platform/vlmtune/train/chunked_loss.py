"""Next-token loss from the final hidden states, in chunks: the tokens x vocabulary logits are never held whole.

The train step asks the model for no logits (`logits_to_keep` selects no position) and takes the final norm's
output instead. Only positions whose next token is supervised are kept; they go through the language-model head
and the cross-entropy a chunk at a time under non-reentrant activation checkpointing, so the forward keeps no
logits and the backward recomputes one chunk's at a time. The head is called as a module, so DeepSpeed ZeRO-3's
module hooks gather its partitioned weight for the forward and for each recomputation, and gather it again
before the head's backward uses it; LoRA or other wrappers of the head apply as they would in the model's forward.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vlmtune_model.tokenizer import IGNORE_INDEX


def final_norm(model: nn.Module) -> nn.Module:
    """The language model's last norm: its output is what the head reads (a transformers LLaVA model)."""
    return model.model.language_model.norm


@contextmanager
def capture_output(module: nn.Module):
    """Yields a dict whose "output" is `module`'s output from the forward run inside the block."""
    captured: dict = {}

    def keep(_module, _inputs, output):
        captured["output"] = output

    handle = module.register_forward_hook(keep)
    try:
        yield captured
    finally:
        handle.remove()


def _chunk_loss(head: nn.Module, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(rows).float(), targets, reduction="sum")


def chunked_loss(
    hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module, rows_per_chunk: int
) -> tuple[torch.Tensor, int]:
    """Mean next-token loss over unmasked labels, as `step.masked_loss` computes it from full logits.

    Args:
        hidden: the final norm's output, [batch, tokens, hidden].
        labels: [batch, tokens], IGNORE_INDEX where not supervised.
        head: the language-model head (called as a module).
        rows_per_chunk: supervised positions per chunk (`chunk_size.chunk_rows`).

    Returns:
        The loss (zero, still connected to the head, when nothing is supervised) and the supervised count.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    rows, targets = hidden[:, :-1][keep], targets[keep]
    count = int(targets.numel())
    if count == 0:
        return head(rows).float().sum() * 0.0, 0
    # No determinism check: under ZeRO-3 the recomputation saves the head's weight, which DeepSpeed releases
    # as the head's call returns (the check would read its empty partition) and gathers again before the
    # head's backward reads it. Reentrant checkpointing is no way out: it would accumulate the weight's
    # gradient once per chunk, which ZeRO-1/2 refuse.
    total = sum(
        checkpoint(
            _chunk_loss,
            head,
            rows[start : start + rows_per_chunk],
            targets[start : start + rows_per_chunk],
            use_reentrant=False,
            determinism_check="none",
        )
        for start in range(0, count, rows_per_chunk)
    )
    return total / count, count
