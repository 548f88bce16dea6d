"""Checkpoints: DeepSpeed state (model, optimizer, scheduler) plus each rank's step, data position and RNG.

Every rank writes into its own local folder; Ray Train merges the ranks' folders into one
checkpoint under the job's output URI (local folder or s3://).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

TAG = "state"


@dataclass
class TrainState:
    """Where a rank is: optimizer steps done and samples of its stream consumed."""

    step: int = 0
    consumed: int = 0


def save(engine, state: TrainState, rank: int) -> Path:
    """Write this rank's share of a checkpoint into a fresh local folder and return it."""
    folder = Path(tempfile.mkdtemp(prefix=f"vlmtune-ckpt-r{rank}-"))
    engine.save_checkpoint(str(folder), tag=TAG, client_state={"step": state.step})
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save(rng, folder / f"rng_rank{rank}.pt")
    (folder / f"position_rank{rank}.json").write_text(json.dumps(asdict(state)))
    return folder


def restore(engine, folder: str | Path, rank: int) -> TrainState:
    """Load DeepSpeed state and this rank's position and RNG from a merged checkpoint folder."""
    folder = Path(folder)
    engine.load_checkpoint(str(folder), tag=TAG, load_optimizer_states=True, load_lr_scheduler_states=True)
    rng = torch.load(folder / f"rng_rank{rank}.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    return TrainState(**json.loads((folder / f"position_rank{rank}.json").read_text()))
