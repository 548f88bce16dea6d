"""One optimizer step: collate, forward (logits only where there are labels), masked loss, backward through DeepSpeed.

Images arrive as uint8 (padded and resized on CPU actors) and are normalized here, on the
accelerator, as part of moving the micro-batch. Nothing here touches Ray, so the step can be
benchmarked alone in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vlmtune_model.image import ImageSpec, normalize_pixels
from vlmtune_model.tokenizer import IGNORE_INDEX


@dataclass
class MicroBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixels: torch.Tensor | None
    """uint8 NHWC as preprocessing ships them, or (after `to`) the model's normalized NCHW pixel values."""
    samples: int
    skipped: int
    truncated: int
    keys: list[str]
    image_spec: ImageSpec | None = None  # mean and std to normalize with; None once normalized

    def to(self, device: torch.device, dtype: torch.dtype) -> MicroBatch:
        """On `device`, images normalized there (uint8 crosses the bus: a quarter of float32's bytes)."""
        pixels = self.pixels
        if pixels is not None:
            pixels = pixels.to(device, non_blocking=True)
            pixels = normalize_pixels(pixels, self.image_spec, dtype) if self.image_spec else pixels.to(dtype)
        return MicroBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                          pixels, self.samples, self.skipped, self.truncated, self.keys)


@dataclass
class StepStats:
    loss: float
    tokens: int
    samples: int
    skipped: int
    truncated: int
    token_squares: int
    """Sum over samples of their token count squared: what causal attention's FLOPs grow with."""
    images: int


def collate(batch: dict[str, np.ndarray], pad_token_id: int, image_spec: ImageSpec) -> MicroBatch:
    """Right-pad a Ray Data numpy batch into tensors; images (uint8) only for rows that have one."""
    ids = [np.asarray(row, dtype=np.int64) for row in batch["input_ids"]]
    labels = [np.asarray(row, dtype=np.int64) for row in batch["labels"]]
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_token_id, dtype=torch.long)
    label_tensor = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (row, row_labels) in enumerate(zip(ids, labels)):
        input_ids[i, : len(row)] = torch.from_numpy(row)
        label_tensor[i, : len(row)] = torch.from_numpy(row_labels)
        attention[i, : len(row)] = 1
    has_image = np.asarray(batch["has_image"], dtype=bool)
    pixels = torch.from_numpy(np.ascontiguousarray(batch["pixel_values"][has_image])) if has_image.any() else None
    skipped = int(sum(1 for reason in batch["skip_reason"] if reason))
    return MicroBatch(input_ids, attention, label_tensor, pixels, len(ids), skipped,
                      int(np.asarray(batch["truncated"]).sum()), [str(k) for k in batch["key"]], image_spec)


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token loss over unmasked labels; zero (not NaN) when a micro-batch has none."""
    shift_logits = logits[:, :-1].reshape(-1, logits.size(-1)).float()
    shift_labels = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    count = int((shift_labels != IGNORE_INDEX).sum())
    return total / max(count, 1), count


def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose next token has a label (bool, the shape of `labels`): the only logits the loss reads.

    Passed to the model as `logits_to_keep`, so the language-model head (a vocabulary-wide matmul, most of the
    tiny preset's compute) runs on answer tokens only. A micro-batch without labels keeps one position, so the
    loss stays a (zero) function of the model and every rank runs the same backward.
    """
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    if not keep.any():
        keep[0, 0] = True
    return keep


def kept_loss(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, int]:
    """`masked_loss` from the logits of the `keep` positions only (the model's flattened `logits_to_keep` output)."""
    targets = labels[:, 1:][keep[:, :-1]]
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets, ignore_index=IGNORE_INDEX,
                            reduction="sum")
    count = int((targets != IGNORE_INDEX).sum())
    return total / max(count, 1), count


def train_step(engine, micro_batches: list[MicroBatch], device: torch.device, dtype: torch.dtype) -> StepStats:
    """Run gradient accumulation over `micro_batches`; DeepSpeed steps the optimizer at the boundary."""
    losses, tokens, token_squares, images = [], 0, 0, 0
    for micro in micro_batches:
        micro = micro.to(device, dtype)
        keep = supervised_positions(micro.labels)
        output = engine(input_ids=micro.input_ids, attention_mask=micro.attention_mask,
                        pixel_values=micro.pixels, use_cache=False, logits_to_keep=keep)
        loss, count = kept_loss(output.logits, micro.labels, keep)
        engine.backward(loss)
        engine.step()
        losses.append(loss.detach().item())
        tokens += int(micro.attention_mask.sum())
        token_squares += int((micro.attention_mask.sum(dim=1) ** 2).sum())
        images += 0 if micro.pixels is None else int(micro.pixels.shape[0])
    return StepStats(
        loss=float(np.mean(losses)), tokens=tokens,
        samples=sum(m.samples for m in micro_batches), skipped=sum(m.skipped for m in micro_batches),
        truncated=sum(m.truncated for m in micro_batches), token_squares=token_squares, images=images,
    )
