"""Training metrics: per-step figures reduced across ranks, kept as history, appended as JSON lines.

A metric row holds: step, total_steps, epoch (fractional), loss, learning_rate, grad_norm, samples,
tokens, samples_per_s, tokens_per_s, mfu (null on CPUs and unknown GPUs), skipped, truncated,
data_wait_s (the seconds the window's steps waited for their micro-batches, mean over ranks; over the
window's seconds, tokens / tokens_per_s, it is the fraction of step time the data stream cost), and
resumed_from (the checkpoint step the run that wrote it started from; 0 for a fresh run).

metrics.jsonl is only ever appended to. A run that resumes from a checkpoint writes the steps after it
again; the rows a killed run wrote past that checkpoint stay in the file and readers drop them
(`effective_rows`): a row whose step does not follow the row before it, or whose resumed_from
differs, starts a new run, which replaces every earlier row after its resumed_from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from vlmtune import storage
from vlmtune.spec.layout import RunLayout
from vlmtune.train.flops import TrainFlops, mfu, peak_flops, train_flops
from vlmtune.train.step import StepStats

SCALARS = ("loss", "learning_rate", "grad_norm", "samples_per_s", "tokens_per_s", "mfu", "skipped", "data_wait_s")
"""The row fields TensorBoard and MLflow get as time series."""


@dataclass(frozen=True)
class FlopsMeter:
    """What turns a window's tokens into MFU: the model's FLOPs and one device's peak."""

    flops: TrainFlops
    peak: float | None
    """FLOP/s of one device at the training precision; None on CPUs and unknown GPUs (MFU is then null)."""

    @classmethod
    def for_model(
        cls, model: torch.nn.Module, trainable: Iterable[str], device: torch.device, precision: str
    ) -> FlopsMeter:
        """The meter of a built model (LoRA adapters included) training `trainable` on `device`."""
        from vlmtune_model.shapes import Shape
        from vlmtune_model.trainable import adapter_parameters

        parts = set(trainable)
        adapters = sum(p.numel() for p in adapter_parameters(model)) if "language_model" in parts else 0
        if adapters:  # LoRA: the language model trains its adapters, not its own weights
            parts.discard("language_model")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        return cls(train_flops(Shape.of_config(model.config), parts, adapters), peak_flops(name, precision))


@dataclass
class MetricsWindow:
    """Accumulates steps between two reports on one rank."""

    started: float = field(default_factory=time.perf_counter)
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    samples: int = 0
    skipped: int = 0
    truncated: int = 0
    token_squares: int = 0
    images: int = 0
    data_wait_s: float = 0.0

    def add_data_wait(self, seconds: float) -> None:
        """Time a step spent blocked on the data stream for its micro-batches."""
        self.data_wait_s += seconds

    def add(self, stats: StepStats) -> None:
        self.losses.append(stats.loss)
        self.tokens += stats.tokens
        self.samples += stats.samples
        self.skipped += stats.skipped
        self.truncated += stats.truncated
        self.token_squares += stats.token_squares
        self.images += stats.images

    def reduce(self, device: torch.device, meter: FlopsMeter | None = None) -> dict:
        """Sum over ranks (all ranks must call); losses are averaged over ranks and steps, and so
        is the elapsed time that rates and MFU divide by."""
        elapsed = time.perf_counter() - self.started
        mean_loss = sum(self.losses) / max(len(self.losses), 1)
        values = torch.tensor(
            [
                mean_loss,
                self.tokens,
                self.samples,
                self.skipped,
                self.truncated,
                elapsed,
                self.token_squares,
                self.images,
                self.data_wait_s,
            ],
            dtype=torch.float64,
            device=device,
        )
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(values)
            world = dist.get_world_size()
        loss, tokens, samples, skipped, truncated, elapsed, token_squares, images, data_wait = values.tolist()
        elapsed /= world
        work = meter.flops.of_batch(tokens, token_squares, images) if meter else 0.0
        return {
            "loss": loss / world,
            "samples": int(samples),
            "tokens": int(tokens),
            "samples_per_s": samples / elapsed if elapsed else 0.0,
            "tokens_per_s": tokens / elapsed if elapsed else 0.0,
            "mfu": mfu(work, elapsed, world, meter.peak) if meter else None,
            "skipped": int(skipped),
            "truncated": int(truncated),
            "data_wait_s": data_wait / world,
        }


def epoch_of(step: int, steps_per_epoch: int | None) -> float | None:
    """Epochs done after `step` optimizer steps (fractional, as Hugging Face's Trainer logs them)."""
    return round(step / steps_per_epoch, 4) if steps_per_epoch else None


class SkippedTooMuch(RuntimeError):
    """More samples were unusable than `spec.data.maxSkippedFraction` allows."""

    def __init__(self, skipped: int, samples: int, limit: float):
        self.skipped, self.samples, self.limit = skipped, samples, limit
        super().__init__(
            f"{skipped} of {samples} samples were skipped ({skipped / samples:.1%}), more than "
            f"spec.data.maxSkippedFraction = {limit:.1%}; check the data (missing or corrupt images, "
            "maxLength cutting image tokens) or raise the limit"
        )

    def __reduce__(self):
        return (SkippedTooMuch, (self.skipped, self.samples, self.limit))


@dataclass
class SkipTotals:
    """Running totals of skipped samples, checked against the spec's limit at every report."""

    limit: float
    skipped: int = 0
    samples: int = 0

    def check(self, reduced: dict) -> None:
        self.skipped += reduced["skipped"]
        self.samples += reduced["samples"]
        if self.samples and self.skipped / self.samples > self.limit:
            raise SkippedTooMuch(self.skipped, self.samples, self.limit)


def to_jsonl(history: list[dict]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in history).encode()


def history_uri(output_uri: str) -> str:
    return RunLayout(output_uri).metrics


class MetricsLog:
    """Rank 0's metrics.jsonl, appended one row per report.

    Local files are opened for appending (and a line cut by a crash or a full disk is closed off first, so the
    next row starts on a line of its own). Object stores have no append: the object is uploaded again with the
    new rows after everything it held, which is an append as far as any reader can tell; the output's lease
    makes this run its only writer.
    """

    def __init__(self, output_uri: str, resumed_from: int = 0) -> None:
        self.uri, self.resumed_from = history_uri(output_uri), resumed_from
        self._local = storage.local_path(self.uri)
        self._held = None if self._local else (storage.read_bytes(self.uri) if storage.exists(self.uri) else b"")

    def append(self, row: dict) -> None:
        line = to_jsonl([{**row, "resumed_from": self.resumed_from}])
        if self._local is not None:
            self._append_local(line)
            return
        if self._held and not self._held.endswith(b"\n"):
            self._held += b"\n"
        self._held += line
        storage.write_bytes(self.uri, self._held)

    def _append_local(self, line: bytes) -> None:
        self._local.parent.mkdir(parents=True, exist_ok=True)
        with open(self._local, "a+b") as handle:
            handle.write(b"\n" + line if _ends_mid_line(handle) else line)
            handle.flush()
            os.fsync(handle.fileno())


def _ends_mid_line(handle) -> bool:
    size = handle.seek(0, os.SEEK_END)
    if not size:
        return False
    handle.seek(size - 1)
    return handle.read(1) != b"\n"


def parse_rows(data: bytes) -> list[dict]:
    """The rows of metrics.jsonl text; lines cut by a crash or a full disk are skipped."""
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def effective_rows(rows: list[dict]) -> list[dict]:
    """The history as the final model saw it: each resumed run replaces the rows after the step it resumed from."""
    history: list[dict] = []
    for row in rows:
        start = row.get("resumed_from", 0)
        if history and (row["step"] <= history[-1]["step"] or start != history[-1].get("resumed_from", 0)):
            while history and history[-1]["step"] > start:
                history.pop()
        history.append(row)
    return history


def read_history(output_uri: str, up_to_step: int | None = None) -> list[dict]:
    """Metric rows of a run as it stands (all, or those up to a resumed step)."""
    uri = history_uri(output_uri)
    if not storage.exists(uri):
        return []
    rows = effective_rows(parse_rows(storage.read_bytes(uri)))
    return [row for row in rows if up_to_step is None or row["step"] <= up_to_step]
