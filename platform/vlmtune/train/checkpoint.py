"""Checkpoints: DeepSpeed state (model, optimizer, scheduler) plus the step, the world size and each rank's RNG.

Every rank writes into its own local folder; Ray Train merges the ranks' folders into one
checkpoint under the job's output URI (local folder or s3://). The data position is the step
alone (the sample plan is a fixed sequence of steps), so a checkpoint can be resumed at any
world size; DeepSpeed's ZeRO-1/2 optimizer shards are then re-split (`zero_reshard`).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

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
    # Written last: a rank's position file marks its share as complete (`resume.latest_checkpoint`).
    (folder / position_file(rank)).write_text(json.dumps(asdict(state)))
    return folder


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
        path, _ = engine.load_checkpoint(str(folder), tag=TAG, load_optimizer_states=True,
                                         load_lr_scheduler_states=True)
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
