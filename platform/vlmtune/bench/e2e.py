"""`vlmtune bench e2e`: the whole platform against the bare train step, on the same shape, in one invocation.

The bare step is `train_step` in this process with a plain torch engine and synthetic full-length batches
(`bench.step.measure_step`). The full path is what a user runs: a Vision-Flan-format dataset is synthesized
and prepared into shards (`data.prepare`), the random-init model of the same shape is exported as a Hugging
Face folder (the weights the bare step started from), and `vlmtune run` trains it in a child process through
`run_tuning_job`: sources resolved and cataloged, the sample plan, each rank's Ray Data stream reading and
preprocessing rows from the shards on CPU actors, Ray Train, DeepSpeed ZeRO-2. Every answer is long enough
that maxLength truncates each sample to exactly the bare step's length, so both sides do the same work per
sample. The child logs one metrics row per window of `steps` steps; once the window after the warmup has
been logged it is stopped (no final checkpoint or export to wait for), and that window's figures are the
full path's: tokens/s, MFU, and `data_wait_s`, the time the loop was blocked on its data stream.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vlmtune.bench.step import StepShape, build_shape_model, measure_step
from vlmtune.bench.synthetic import write_vision_flan_like
from vlmtune.train.levers import Levers
from vlmtune_model.shapes import SHAPES

TARGETS = {"ratio": 0.9, "data_wait_fraction": 0.02}
"""Issue 17: the full path at >= 0.9x the bare step, at most 2% of step time waiting for data."""
DEFAULT_SHAPES = {"cpu": "tiny", "cuda": "llava-2.7b"}
_POLL_S = 0.5


class BenchFailed(RuntimeError):
    """The full path failed or stalled; the message holds the end of its log."""


@dataclass(frozen=True)
class E2EConfig:
    device: str = "cpu"
    """cpu (fp32, DeepSpeed's CPU path) or cuda (bf16, one GPU)."""
    shape: str | None = None
    """A `vlmtune_model.shapes` name; default tiny on cpu, llava-2.7b on cuda."""
    micro_batch: int = 2
    accumulation: int = 2
    seq_len: int = 128
    steps: int = 3
    """Timed optimizer steps: one metrics window."""
    warmup: int = 2
    """Untimed steps first (rounded up to whole windows of `steps`)."""
    checkpointing: bool = True
    checkpoint_layers: int | None = None
    levers: Levers = field(default_factory=Levers)
    cpus_per_worker: int = 1
    """The Ray Train worker's CPUs, and the bare step's intra-op threads on cpu."""
    workdir: str | None = None
    """Where data, model and run go (default: a fresh temporary folder, removed afterwards)."""
    timeout_s: float = 1800.0

    @property
    def shape_name(self) -> str:
        return self.shape or DEFAULT_SHAPES[self.device]

    @property
    def windows(self) -> int:
        """Windows of `steps` steps before the timed one."""
        return max(1, math.ceil(self.warmup / self.steps))

    @property
    def timed_step(self) -> int:
        """The step whose metrics row holds the timed window."""
        return (self.windows + 1) * self.steps


def run_e2e_bench(config: E2EConfig) -> dict:
    """Measure the bare step and the full path on `config`'s shape; see the module docstring.

    Raises:
        KeyError: an unknown shape.
        ValueError: a shape whose vocabulary cannot hold the tokenizer's.
        BenchFailed: the full path failed or did not reach its timed step within `timeout_s`.
    """
    workdir = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="vlmtune-e2e-"))
    # Libraries print to stdout on the way (DeepSpeed's logger binds it when transformers imports it): the
    # figures own stdout, so `--json` stays one JSON object.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            bare = _bare_step(config, workdir / "model")
            shards = _prepare_data(config, workdir)
            rows = _full_path(config, workdir / "model", shards, workdir / "run")
    finally:
        if not config.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return summarize(config, bare, rows)


def summarize(config: E2EConfig, bare: dict, rows: list[dict]) -> dict:
    """The result from the bare step's figures and the full path's metrics rows (pure)."""
    timed = next(row for row in rows if row["step"] == config.timed_step)
    window_s = timed["tokens"] / timed["tokens_per_s"]
    full = {
        "tokens_per_s": timed["tokens_per_s"],
        "mfu": timed["mfu"],
        "seconds_per_step": window_s / config.steps,
        "data_wait_s": timed["data_wait_s"],
        "data_wait_fraction": timed["data_wait_s"] / window_s,
        "tokens_per_sample": timed["tokens"] / timed["samples"],
        "rows": rows,
    }
    ratio = full["tokens_per_s"] / bare["tokens_per_s"]
    return {
        "mode": "e2e",
        "device": bare["device"],
        "shape": config.shape_name,
        "seq_len": config.seq_len,
        "micro_batch": config.micro_batch,
        "accumulation": config.accumulation,
        "steps": config.steps,
        "warmup_steps": config.timed_step - config.steps,
        "checkpoint_layers": bare["checkpoint_layers"],
        **config.levers.describe(),
        "attention": bare["attention"],
        "bare": bare,
        "full": full,
        "ratio": ratio,
        "data_wait_fraction": full["data_wait_fraction"],
        "targets": dict(TARGETS),
        "meets_targets": ratio >= TARGETS["ratio"] and full["data_wait_fraction"] <= TARGETS["data_wait_fraction"],
    }


def _bare_step(config: E2EConfig, export: Path) -> dict:
    """Build the shape, export its initial weights for the full path, time the bare step, free the device."""
    from vlmtune_model.builder import BuiltModel
    from vlmtune_model.export import save_export
    from vlmtune_model.tokenizer import image_token_id, tiny_tokenizer

    shape, device = SHAPES[config.shape_name], torch.device(config.device)
    tokenizer = tiny_tokenizer()
    if len(tokenizer) > shape.text["vocab_size"]:
        raise ValueError(
            f"--shape {shape.name}: its {shape.text['vocab_size']} tokens cannot hold the tiny "
            f"tokenizer's {len(tokenizer)}; pick a shape with a larger vocabulary"
        )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    threads = torch.get_num_threads()
    torch.set_num_threads(config.cpus_per_worker)  # the worker's intra-op threads (train loop: cpusPerWorker)
    try:
        model, token, kernel = build_shape_model(
            shape,
            config.device,
            dtype,
            config.checkpointing,
            config.checkpoint_layers,
            config.levers,
            image_token_id=image_token_id(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
        save_export(BuiltModel(model, tokenizer), state, export)
        del state
        figures = measure_step(
            model,
            shape,
            token,
            device,
            StepShape(config.micro_batch, config.seq_len, config.accumulation),
            config.steps,
            config.warmup,
            config.levers,
        )
    finally:
        torch.set_num_threads(threads)
    layers = shape.text["num_hidden_layers"]
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the full path's worker needs the memory
    return {
        **figures,
        "attention": kernel,
        "checkpoint_layers": (config.checkpoint_layers or layers) if config.checkpointing else 0,
    }


def _prepare_data(config: E2EConfig, workdir: Path) -> Path:
    from vlmtune.data.prepare import PrepareConfig, prepare

    shape = SHAPES[config.shape_name]
    samples = (config.timed_step + 2) * config.micro_batch * config.accumulation
    # Answers of seq_len words: every sample is truncated to seq_len tokens, as the bare step's are long.
    raw = write_vision_flan_like(
        workdir / "raw", samples, tasks=8, image_side=shape.image_size, answer_words=config.seq_len
    )
    shards = workdir / "shards"
    prepare(
        PrepareConfig(
            fmt="vision-flan",
            annotations=str(raw.annotations),
            images=str(raw.images),
            out=str(shards),
            image_tokens=shape.image_tokens,
        )
    )
    return shards


def job_document(config: E2EConfig, export: Path, shards: Path, out: Path) -> dict:
    """The TuningJob the full path runs: the bare step's settings, one worker (pure)."""
    levers = config.levers
    training = {
        "epochs": 1,
        "globalBatchSize": config.micro_batch * config.accumulation,
        "microBatchSize": config.micro_batch,
        "maxLength": config.seq_len,
        "learningRate": 1.0e-5,
        "logEverySteps": config.steps,
        "resume": "never",
        "gradientCheckpointing": config.checkpointing,
        "chunkedLoss": levers.chunked_loss,
        "compileLayers": levers.compile_layers,
        "packSamples": levers.pack,
        "offloadActivations": levers.offload_activations,
        "attention": levers.attention,
    }
    if config.checkpointing and config.checkpoint_layers is not None:
        training["checkpointLayers"] = config.checkpoint_layers
    return {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "bench-e2e"},
        "spec": {
            "model": {"pretrained": str(export), "trainable": ["projector", "language_model"]},
            "data": {"sources": [{"uri": str(shards), "format": "shards"}]},
            "training": training,
            "resources": {
                "workers": 1,
                "gpusPerWorker": int(config.device == "cuda"),
                "cpusPerWorker": config.cpus_per_worker,
            },
            "output": {"uri": str(out)},
        },
    }


def _full_path(config: E2EConfig, export: Path, shards: Path, out: Path) -> list[dict]:
    """`vlmtune run` in its own process group until the timed window is logged; its metrics rows."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    job = out / "job.json"
    job.write_text(json.dumps(job_document(config, export, shards, out)))
    log = out / "run.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "vlmtune.cli", "run", str(job), "--force"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return _wait_for_step(process, out / "metrics.jsonl", config.timed_step, config.timeout_s, log)
    finally:
        _stop(process)


def _wait_for_step(process: subprocess.Popen, metrics: Path, step: int, timeout_s: float, log: Path) -> list[dict]:
    started = time.perf_counter()
    while True:
        rows = read_rows(metrics)
        if rows and rows[-1]["step"] >= step:
            return rows
        if process.poll() is not None:
            raise BenchFailed(f"vlmtune run ended before step {step}:\n{_tail(log)}")
        if time.perf_counter() - started > timeout_s:
            raise BenchFailed(f"vlmtune run reached no step {step} within {timeout_s:.0f} s:\n{_tail(log)}")
        time.sleep(_POLL_S)


def read_rows(metrics: Path) -> list[dict]:
    """The complete rows of a metrics file being written (a half-written last line is left for later)."""
    try:
        text = metrics.read_text()
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # Ray and the worker holding the GPU go with it
    process.wait()


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def report(result: dict, as_json: bool) -> str:
    """One JSON object, or one paragraph for a terminal."""
    if as_json:
        return json.dumps(result, indent=1)
    bare, full = result["bare"], result["full"]
    meets = "meets" if result["meets_targets"] else "misses"
    return (
        f"{result['shape']} on {result['device']}, micro-batch {result['micro_batch']} x "
        f"{result['accumulation']}, {result['seq_len']} tokens/sample:\n"
        f"  bare step  {bare['tokens_per_s']:,.0f} tokens/s, MFU {_pct(bare['mfu'])}\n"
        f"  full path  {full['tokens_per_s']:,.0f} tokens/s, MFU {_pct(full['mfu'])} "
        f"(vlmtune run: Ray Data from shards, Ray Train, DeepSpeed ZeRO-2)\n"
        f"  ratio {result['ratio']:.3f} (target >= {TARGETS['ratio']}), data wait "
        f"{result['data_wait_fraction']:.2%} of step time (target <= {TARGETS['data_wait_fraction']:.0%}): "
        f"{meets} the targets"
    )


def _pct(value: float | None) -> str:
    return "n/a (CPU or unknown peak)" if value is None else f"{value:.1%}"
