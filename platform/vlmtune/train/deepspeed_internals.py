"""Everything vlmtune needs from DeepSpeed beyond its public API, in one place, checked against the pinned version.

DeepSpeed has no public call for (a) the list of a checkpoint's ZeRO shard files, (b) the flat fp32 partitions
and their optimizer state, which a world-size change must fill before the public fragment setters
(`safe_set_full_fp32_param`, `safe_set_full_optimizer_state`) can write into them, and (c) gathering ZeRO-3
weights into one state dict on rank 0 without writing a file. Each is one function here; a DeepSpeed release
that renames them fails `check()` with one line, before training starts, instead of deep inside a resume.
tests/unit/train/test_deepspeed_internals.py runs them against the installed DeepSpeed.
"""

from __future__ import annotations

SHM_COMM_OP = "deepspeed_shm_comm"  # DeepSpeed's CPU shared-memory all-reduce (ops/op_builder/cpu/comm.py)
TESTED = "0.19"  # the DeepSpeed minor version these accesses were written and tested against
_ENGINE = ("_get_all_zero_checkpoint_names", "_zero3_consolidated_16bit_state_dict")
_ZERO_OPTIMIZER = ("single_partition_of_fp32_groups", "_lazy_init_hp_params_optimizer_state", "update_lp_params")


class UnsupportedDeepSpeed(RuntimeError):
    """The installed DeepSpeed lacks an internal vlmtune relies on."""

    def __init__(self, message: str):
        super().__init__(message)

    def __reduce__(self):
        return type(self), (str(self),)


def skip_shm_comm() -> None:
    """Keep DeepSpeed from JIT-building its CPU shared-memory all-reduce op when it sets up communication.

    On the CPU accelerator `deepspeed.comm` compiles that C++ op (30 s to 4 min of one core and 1.5 GB, once per
    Python environment) the first time any engine starts, though only DeepSpeed's inference all-reduce uses it:
    ZeRO training reduces through torch.distributed (gloo here). Marking the op incompatible is the one switch
    `deepspeed.comm.torch.build_shm_op` reads. GPU accelerators never build it, so this is a no-op there.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False


def check(engine) -> None:
    """Raise UnsupportedDeepSpeed when `engine` (and its ZeRO-1/2 optimizer) lacks what this module uses."""
    import deepspeed

    missing = [f"DeepSpeedEngine.{name}" for name in _ENGINE if not hasattr(engine, name)]
    if engine.zero_optimization_stage() in (1, 2):
        missing += [
            f"{type(engine.optimizer).__name__}.{name}"
            for name in _ZERO_OPTIMIZER
            if not hasattr(engine.optimizer, name)
        ]
    if missing:
        raise UnsupportedDeepSpeed(
            f"DeepSpeed {deepspeed.__version__} lacks {', '.join(missing)} (vlmtune is tested "
            f"with {TESTED}.x); install deepspeed=={TESTED}.*"
        )


def zero_shard_files(engine, folder: str, tag: str) -> list[str]:
    """The ZeRO optimizer-state files of checkpoint `tag` in `folder`, in rank order (after `load_checkpoint` of it:
    DeepSpeed learns the saving world size there)."""
    return engine._get_all_zero_checkpoint_names(folder, tag, engine.bfloat16_enabled())


def fp32_partitions(engine) -> list:
    """The flat fp32 master partitions this rank's ZeRO-1/2 optimizer owns, one per param group."""
    return engine.optimizer.single_partition_of_fp32_groups


def partition_state(engine, partition) -> dict:
    """The wrapped torch optimizer's state of one flat partition (created lazily by torch at its first step)."""
    return engine.optimizer.optimizer.state[partition]


def relink_fragments(engine) -> None:
    """Point every parameter's fragment at the (new) optimizer state, so the fragment API writes into it."""
    zero = engine.optimizer
    zero._hp_optimizer_states_linked = False
    zero._lazy_init_hp_params_optimizer_state()


def refresh_low_precision(engine) -> None:
    """Copy the fp32 masters into the bf16/fp16 weights the forward pass uses."""
    engine.optimizer.update_lp_params()


def consolidated_state_dict(engine) -> dict | None:
    """ZeRO-3: every weight gathered onto rank 0 in 16 bits (a collective: every rank must call it); None elsewhere."""
    return engine._zero3_consolidated_16bit_state_dict()
