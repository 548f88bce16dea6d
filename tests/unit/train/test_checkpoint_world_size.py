"""A checkpoint saved by W1 ranks loads at W2 ranks with the exact optimizer state, and training goes on as if
nothing had changed (real DeepSpeed ZeRO engines in gloo process groups; no Ray)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Slow: a world-size change is also resumed end to end in tests/integration/test_resume.py;
# this one is in `-m slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

GLOBAL_BATCH, MICRO = 8, 4


def _config(world: int, stage: int) -> dict:
    return {
        "train_batch_size": GLOBAL_BATCH,
        "train_micro_batch_size_per_gpu": MICRO,
        "gradient_accumulation_steps": GLOBAL_BATCH // (MICRO * world),
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": stage, "overlap_comm": False, "contiguous_gradients": True},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def _engine(world: int, stage: int):
    import deepspeed

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=_config(world, stage), dist_init_required=False
    )
    return engine


def _global_batch(step: int) -> torch.Tensor:
    return torch.randn(GLOBAL_BATCH, 7, generator=torch.Generator().manual_seed(step))


def _train_step(engine, step: int, rank: int, world: int) -> None:
    """One optimizer step on the step's global batch; rank r takes micro-batches r, r+world, ..."""
    micro_batches = _global_batch(step).split(MICRO)[rank::world]
    for micro in micro_batches:
        engine.backward(engine(micro).pow(2).mean())
        engine.step()


def _full_state(engine) -> dict:
    """name -> fp32 weight, Adam moments (a collective), plus the LR."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    state = {"lr": engine.get_lr()}
    for name, param in engine.module.named_parameters():
        if engine.zero_optimization_stage() == 0:
            moments = engine.optimizer.state[param]
            state[name] = [param.detach().clone(), moments["exp_avg"].clone(), moments["exp_avg_sq"].clone()]
        else:
            state[name] = [
                safe_get_full_fp32_param(param).clone(),
                safe_get_full_optimizer_state(param, "exp_avg").clone(),
                safe_get_full_optimizer_state(param, "exp_avg_sq").clone(),
            ]
    return state


def _phase(rank: int, world: int, port: int, stage: int, load_from: str | None, out: str, name: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    dist.init_process_group("gloo", rank=rank, world_size=world)
    import deepspeed

    from vlmtune.train import checkpoint as ckpt

    deepspeed.init_distributed("gloo")
    engine = _engine(world, stage)
    if load_from is None:
        for step in range(3):
            _train_step(engine, step, rank, world)
        state = ckpt.TrainState(step=3, world_size=world)
    else:
        state = ckpt.restore(engine, load_from, rank, world, seed=0)
    saved = _full_state(engine)
    folder = ckpt.save(engine, state, rank)
    dist.barrier()
    shutil.copytree(folder, f"{out}/{name}", dirs_exist_ok=True)  # what Ray Train's merge of rank folders does
    _train_step(engine, 3, rank, world)
    after = _full_state(engine)
    if rank == 0:
        torch.save({"saved": saved, "after": after, "step": state.step}, f"{out}/{name}.pt")
    dist.barrier()
    dist.destroy_process_group()


def _run(world: int, stage: int, load_from: Path | None, out: Path, name: str) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_phase, args=(world, port, stage, str(load_from) if load_from else None, str(out), name), nprocs=world)
    return torch.load(out / f"{name}.pt", weights_only=False)


def _assert_same(first: dict, second: dict, exact: bool) -> None:
    assert first["lr"] == pytest.approx(second["lr"])
    for name in first:
        if name == "lr":
            continue
        for a, b, what in zip(first[name], second[name], ("weight", "exp_avg", "exp_avg_sq")):
            if exact:
                assert torch.equal(a, b), f"{name} {what} differs"
            else:
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name} {what} differs")


@pytest.mark.parametrize("stage", [2, pytest.param(1, marks=pytest.mark.slow), pytest.param(0, marks=pytest.mark.slow)])
def test_checkpoint_moves_between_world_sizes(tmp_path, stage):
    two = _run(2, stage, None, tmp_path, "two")
    one = _run(1, stage, tmp_path / "two", tmp_path, "one")
    assert one["step"] == 3
    _assert_same(two["saved"], one["saved"], exact=True)  # loaded at 1 rank: exactly what 2 ranks saved
    _assert_same(two["after"], one["after"], exact=False)  # and the next step matches (up to summation order)
    if stage == 2:
        back = _run(2, stage, tmp_path / "one", tmp_path, "back")
        _assert_same(one["saved"], back["saved"], exact=True)
