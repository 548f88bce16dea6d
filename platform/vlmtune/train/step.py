"""One optimizer step: collate, forward (logits only where there are labels), masked loss, backward through DeepSpeed.

Images arrive as uint8 (padded and resized on CPU actors) and are normalized here, on the
accelerator, as part of moving the micro-batch. Nothing here touches Ray, so the step can be
benchmarked alone in one process. The per-micro-batch levers (`levers.Levers`: packed rows,
chunked loss, activation offload) are applied here; the default is the plain padded path.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from vlmtune.train.chunk_size import chunk_rows
from vlmtune.train.chunked_loss import capture_output, chunked_loss, final_norm
from vlmtune.train.levers import Levers
from vlmtune.train.offload import OffloadActivations
from vlmtune.train.packing import pack
from vlmtune_model.image import ImageSpec, normalize_pixels
from vlmtune_model.tokenizer import IGNORE_INDEX


@dataclass
class MicroBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    """None once packed: sample boundaries are then in `position_ids`."""
    labels: torch.Tensor
    pixels: torch.Tensor | None
    """uint8 NHWC as preprocessing ships them, or (after `to`) the model's normalized NCHW pixel values."""
    samples: int
    skipped: int
    truncated: int
    keys: list[str]
    image_spec: ImageSpec | None = None  # mean and std to normalize with; None once normalized
    position_ids: torch.Tensor | None = None
    """Packed rows only: positions restarting at each sample."""
    lengths: torch.Tensor | None = None
    """Packed rows only: each sample's token count."""

    def to(self, device: torch.device, dtype: torch.dtype) -> MicroBatch:
        """On `device`, images normalized there (uint8 crosses the bus: a quarter of float32's bytes)."""
        pixels = self.pixels
        if pixels is not None:
            pixels = pixels.to(device, non_blocking=True)
            pixels = normalize_pixels(pixels, self.image_spec, dtype) if self.image_spec else pixels.to(dtype)
        return MicroBatch(
            self.input_ids.to(device),
            _to(self.attention_mask, device),
            self.labels.to(device),
            pixels,
            self.samples,
            self.skipped,
            self.truncated,
            self.keys,
            position_ids=_to(self.position_ids, device),
            lengths=self.lengths,
        )

    def packed(self) -> MicroBatch:
        """The samples as one padding-free row (`packing.pack`); rows must be right-padded, as collated.

        Raises:
            ValueError: a row's attention mask is not ones followed by zeros.
        """
        row = pack(self.input_ids, self.attention_mask, self.labels)
        return replace(
            self,
            input_ids=row.input_ids,
            attention_mask=None,
            labels=row.labels,
            position_ids=row.position_ids,
            lengths=row.lengths,
        )

    def sample_lengths(self) -> torch.Tensor:
        """Tokens of each sample (padding excluded)."""
        return self.lengths if self.lengths is not None else self.attention_mask.sum(dim=1)


def _to(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


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
    return MicroBatch(
        input_ids,
        attention,
        label_tensor,
        pixels,
        len(ids),
        skipped,
        int(np.asarray(batch["truncated"]).sum()),
        [str(k) for k in batch["key"]],
        image_spec,
    )


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
    total = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    count = int((targets != IGNORE_INDEX).sum())
    return total / max(count, 1), count


def train_step(
    engine, micro_batches: list[MicroBatch], device: torch.device, dtype: torch.dtype, levers: Levers = Levers()
) -> StepStats:
    """Run gradient accumulation over `micro_batches`; DeepSpeed steps the optimizer at the boundary.

    `levers` must match what `levers.prepare_model` applied to the engine's model (packed rows need
    the attention kernel it chose).
    """
    losses, tokens, token_squares, images = [], 0, 0, 0
    for micro in micro_batches:
        micro = (micro.packed() if levers.pack else micro).to(device, dtype)
        with OffloadActivations() if levers.offload_activations else nullcontext():
            loss, _ = _forward_loss(engine, micro, levers.chunked_loss)
        engine.backward(loss)
        engine.step()
        losses.append(loss.detach().item())
        lengths = micro.sample_lengths()
        tokens += int(lengths.sum())
        token_squares += int((lengths**2).sum())
        images += 0 if micro.pixels is None else int(micro.pixels.shape[0])
    return StepStats(
        loss=float(np.mean(losses)),
        tokens=tokens,
        samples=sum(m.samples for m in micro_batches),
        skipped=sum(m.skipped for m in micro_batches),
        truncated=sum(m.truncated for m in micro_batches),
        token_squares=token_squares,
        images=images,
    )


def _forward_loss(engine, micro: MicroBatch, chunked: bool) -> tuple[torch.Tensor, int]:
    inputs = dict(
        input_ids=micro.input_ids, attention_mask=micro.attention_mask, pixel_values=micro.pixels, use_cache=False
    )
    if micro.position_ids is not None:
        inputs["position_ids"] = micro.position_ids
    if not chunked:
        keep = supervised_positions(micro.labels)
        return kept_loss(engine(**inputs, logits_to_keep=keep).logits, micro.labels, keep)
    model = engine.module
    no_position = torch.empty(0, dtype=torch.long, device=micro.input_ids.device)
    with capture_output(final_norm(model)) as captured:
        engine(**inputs, logits_to_keep=no_position)  # the head runs on no position; the norm's output is kept
    # The vocabulary from the config: under ZeRO-3 the head's weight is a partition outside the forward.
    rows = chunk_rows(model.config.text_config.vocab_size)
    return chunked_loss(captured["output"], micro.labels, model.get_output_embeddings(), rows)
