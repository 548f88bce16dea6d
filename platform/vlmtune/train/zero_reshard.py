"""Loading a ZeRO-1/2 checkpoint at another data-parallel world size (elastic jobs, a changed `workers`).

DeepSpeed refuses to load optimizer state saved by a different number of ranks, and its legacy
`elastic_checkpoint` path needs optimizers that keep `step` in their param groups (torch AdamW
does not). The shards themselves say where every parameter lives, though: each rank's optimizer
file maps parameter names to (start, numel) inside that rank's flat partition, and a parameter's
fragments follow each other in rank order. So the full fp32 weight and Adam moments of every
parameter can be put back together and handed to DeepSpeed's public fragment API
(`safe_set_full_fp32_param`, `safe_set_full_optimizer_state`), which writes each rank's share for
the current partitioning. Exact: no value is recomputed.

Written against DeepSpeed 0.19's ZeRO-1/2 layout; `tests/unit/train/test_checkpoint_world_size.py` checks it. What
DeepSpeed offers no public call for goes through `train.deepspeed_internals`.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from vlmtune.train import deepspeed_internals as internals

FP32 = "fp32"  # the key under which a parameter's fp32 master weight travels beside its optimizer state


def full_parameter_states(shards: list[dict]) -> dict[str, dict[str, torch.Tensor | int | float]]:
    """name -> {"fp32": flat master weight, "exp_avg": ..., "step": ...} from every rank's ZeRO-1/2 state dict.

    Args:
        shards: the `optimizer_state_dict` of every saved rank, in rank order.
    """
    from deepspeed.checkpoint.constants import (
        BASE_OPTIMIZER_STATE,
        PARAM_SLICE_MAPPINGS,
        SINGLE_PARTITION_OF_FP32_GROUPS,
    )

    pieces: dict[str, dict[str, list[torch.Tensor]]] = defaultdict(lambda: defaultdict(list))
    scalars: dict[str, dict] = {}
    for shard in shards:
        base = shard[BASE_OPTIMIZER_STATE]
        if not isinstance(base, dict):
            raise ValueError("zero_optimization.elastic_checkpoint layouts are not supported; save rigid checkpoints")
        for group, mapping in enumerate(shard[PARAM_SLICE_MAPPINGS]):
            partition = {FP32: shard[SINGLE_PARTITION_OF_FP32_GROUPS][group]}
            group_state = base["state"].get(group, {})
            partition.update({key: value for key, value in group_state.items() if _is_partition(value)})
            for name, address in mapping.items():
                for key, flat in partition.items():
                    pieces[name][key].append(flat.narrow(0, address.start, address.numel))
                scalars[name] = {key: value for key, value in group_state.items() if not _is_partition(value)}
    return {
        name: {**{key: torch.cat(parts) for key, parts in states.items()}, **scalars[name]}
        for name, states in pieces.items()
    }


def _is_partition(value) -> bool:
    return torch.is_tensor(value) and value.dim() == 1


def load_resharded(engine, folder: str, tag: str) -> dict:
    """Load a checkpoint saved at another world size into `engine`; returns DeepSpeed's client state.

    The module, LR scheduler and client state load the ordinary way; optimizer state comes from the
    reassembled shards. Every rank reads every shard (they are in the merged checkpoint folder).
    """
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    if engine.zero_optimization_stage() not in (1, 2):
        raise RuntimeError(
            f"resuming at a new world size needs ZeRO stage 0, 1 or 2 "
            f"(got {engine.zero_optimization_stage()}); resume with the workers it was saved with"
        )
    path, client_state = engine.load_checkpoint(
        folder, tag=tag, load_optimizer_states=False, load_lr_scheduler_states=True
    )
    if path is None:
        raise RuntimeError(f"no DeepSpeed checkpoint {tag!r} in {folder}")
    from deepspeed.checkpoint.constants import OPTIMIZER_STATE_DICT

    names = internals.zero_shard_files(engine, folder, tag)
    shards = [torch.load(name, map_location="cpu", weights_only=False)[OPTIMIZER_STATE_DICT] for name in names]
    full = full_parameter_states(shards)
    _ensure_optimizer_state(engine, next(iter(full.values())))
    for name, param in engine.module.named_parameters():
        if name not in full:
            continue
        states = full[name]
        safe_set_full_fp32_param(param, states[FP32].view_as(param))
        for key, value in states.items():
            if key != FP32 and torch.is_tensor(value) and value.dim() == 1:
                safe_set_full_optimizer_state(param, value.view_as(param), key)
    internals.refresh_low_precision(engine)  # bf16/fp16 weights follow the exact fp32 masters
    _restore_learning_rates(engine)
    return client_state


def _restore_learning_rates(engine) -> None:
    """The scheduler's state is loaded, but param groups get their LR from the optimizer state we skipped."""
    if engine.lr_scheduler is not None:
        for group, lr in zip(engine.optimizer.param_groups, engine.lr_scheduler.get_last_lr()):
            group["lr"] = lr


def _ensure_optimizer_state(engine, example: dict) -> None:
    """Give every flat partition an optimizer state of the saved keys, so the fragment API can write it.

    Torch optimizers create state lazily at their first step; a fresh engine has none yet.
    """
    for flat in internals.fp32_partitions(engine):
        state = internals.partition_state(engine, flat)
        for key, value in example.items():
            if key == FP32 or key in state:
                continue
            state[key] = torch.zeros_like(flat) if _is_partition(value) else _copy(value)
    internals.relink_fragments(engine)  # link the fragments to the state just made


def _copy(value):
    return value.clone() if torch.is_tensor(value) else value
