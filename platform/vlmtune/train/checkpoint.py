"""Checkpoints: DeepSpeed state (model, optimizer, scheduler) plus the step, the world size and each rank's RNG.

Every rank writes into its own local folder; Ray Train merges the ranks' folders into one
checkpoint under the job's output URI (local folder or s3://), and rank 0 then writes the completion
record that makes it count (`completion`). The data position is the step alone (the sample plan is a
fixed sequence of steps), so a checkpoint can be resumed at any world size; DeepSpeed's ZeRO-1/2
optimizer shards are then re-split (`zero_reshard`).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import ray.train
import torch
import torch.distributed as dist

from vlmtune.spec.layout import RunLayout, checkpoint_name
from vlmtune.train import completion
from vlmtune.train.resume import prune
from vlmtune.train.zero_reshard import load_resharded

TAG = "state"


@dataclass
class TrainState:
    """Where the run is: optimizer steps done (every rank agrees), and how many ranks did them."""

    step: int = 0
    world_size: int = 1


def position_file(rank: int) -> str:
    return f"position_rank{rank}.json"


def save(engine, state: TrainState, rank: int) -> Path:
    """Write this rank's share of a checkpoint into a fresh local folder and return it."""
    folder = Path(tempfile.mkdtemp(prefix=f"vlmtune-ckpt-r{rank}-"))
    engine.save_checkpoint(str(folder), tag=TAG, client_state={"step": state.step})
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save(rng, folder / f"rng_rank{rank}.pt")
    (folder / position_file(rank)).write_text(json.dumps(asdict(state)))
    return folder


def commit(engine, state: TrainState, rank: int, metrics: dict, output_uri: str, keep: int) -> None:
    """Save a checkpoint of every rank (all ranks call this), report it to Ray Train, and make it count.

    Rank 0 first removes any completion record a folder of the same name holds (a restart replaying steps
    writes it again), and once every rank has uploaded, writes the new record, waits until Ray Train has
    registered the checkpoint as its latest (it restarts failed workers from that one), and only then drops
    checkpoints past `keep`.

    Raises:
        completion.CheckpointIncomplete: the stored files differ from what the ranks wrote.
    """
    name = checkpoint_name(state.step)
    uri = RunLayout(output_uri).checkpoint(state.step)
    if rank == 0:
        completion.unseal(uri)
    folder = save(engine, state, rank)
    try:
        share = completion.describe_folder(folder)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)), checkpoint_dir_name=name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    shares = _gather(share)  # a collective: every rank's report, and so its upload, has returned
    if rank == 0:
        completion.seal(uri, state.step, state.world_size, shares)
        ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
        prune(output_uri, keep, state.step)


def _gather(share: dict) -> list[dict]:
    if not (dist.is_available() and dist.is_initialized()):
        return [share]
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, share)
    return shares


def read_state(folder: str | Path) -> TrainState:
    return TrainState(**json.loads((Path(folder) / position_file(0)).read_text()))


def restore(engine, folder: str | Path, rank: int, world_size: int, seed: int) -> TrainState:
    """Load DeepSpeed state, the step and this rank's RNG from a merged checkpoint folder.

    A checkpoint from another world size loads too: ZeRO-1/2 optimizer state is re-split across the
    current ranks, and ranks the checkpoint did not have get RNG seeded from (seed, step, rank).
    """
    folder = Path(folder)
    saved = read_state(folder)
    if saved.world_size == world_size or engine.zero_optimization_stage() == 0:
        path, _ = engine.load_checkpoint(
            str(folder), tag=TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if path is None:
            raise RuntimeError(f"no DeepSpeed checkpoint {TAG!r} in {folder}")
    else:
        load_resharded(engine, str(folder), TAG)
    _restore_rng(folder / f"rng_rank{rank}.pt", seed, saved.step, rank)
    return TrainState(step=saved.step, world_size=world_size)


def _restore_rng(path: Path, seed: int, step: int, rank: int) -> None:
    if not path.exists():
        derived = hash((seed, step, rank)) % 2**31
        random.seed(derived)
        np.random.seed(derived)
        torch.manual_seed(derived)
        return
    rng = torch.load(path, weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
