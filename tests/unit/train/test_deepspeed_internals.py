"""The DeepSpeed internals vlmtune relies on exist in the installed version and do what the adapter says
(one real ZeRO-2 engine and one ZeRO-3 engine, a one-process gloo group, no Ray)."""

from __future__ import annotations

import pytest
import torch

from vlmtune.train import deepspeed_internals as internals

pytestmark = pytest.mark.integration


@pytest.fixture
def group(gloo_world):
    return gloo_world


def engine_at(stage: int):
    import deepspeed

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    config = {
        "train_batch_size": 4,
        "train_micro_batch_size_per_gpu": 4,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config, dist_init_required=False)
    return engine


def test_the_zero2_internals_exist_and_behave(group, tmp_path):
    engine = engine_at(2)
    internals.check(engine)
    engine.backward(engine(torch.randn(4, 7)).pow(2).mean())
    engine.step()
    (partition,) = internals.fp32_partitions(engine)
    assert partition.numel() == sum(p.numel() for p in engine.module.parameters())
    assert set(internals.partition_state(engine, partition)) >= {"exp_avg", "exp_avg_sq"}
    engine.save_checkpoint(str(tmp_path), tag="t")
    engine.load_checkpoint(str(tmp_path), tag="t", load_optimizer_states=False)
    (shard,) = internals.zero_shard_files(engine, str(tmp_path), "t")
    assert shard.endswith("optim_states.pt") and "t" in shard
    internals.relink_fragments(engine)
    internals.refresh_low_precision(engine)


def test_zero3_weights_gather_into_one_state_dict(group):
    engine = engine_at(3)
    internals.check(engine)
    state = internals.consolidated_state_dict(engine)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"} and state["0.weight"].shape == (5, 7)


def test_a_deepspeed_without_an_internal_is_one_line(group):
    engine = engine_at(2)
    real = engine.optimizer

    class Renamed:  # a release that renamed one internal
        def __getattr__(self, name):
            if name == "single_partition_of_fp32_groups":
                raise AttributeError(name)
            return getattr(real, name)

    engine.optimizer = Renamed()
    with pytest.raises(internals.UnsupportedDeepSpeed, match="lacks .*single_partition_of_fp32_groups.*deepspeed=="):
        internals.check(engine)


def test_engines_never_build_the_cpu_shared_memory_all_reduce():
    """The op's builder still has the name skip_shm_comm marks, and DeepSpeed's comm setup then builds nothing."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator
    from deepspeed.comm.torch import build_shm_op

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    assert builder is None or builder.NAME == internals.SHM_COMM_OP
    internals.skip_shm_comm()
    assert deepspeed.ops.__compatible_ops__[internals.SHM_COMM_OP] is False
    assert build_shm_op() is None
