"""The smallest change that fits: order, divisibility, combinations, nothing-fits."""

from __future__ import annotations

from vlmtune.plan.fit import Change, suggest
from vlmtune.plan.memory import Setup

BASE = Setup(ranks=4, micro_batch=8, global_batch=64, seq_len=2048, precision="bf16", checkpointing=False, zero_stage=2)


def cost(setup: Setup) -> int:
    """A toy memory model in which every knob helps by a known amount."""
    activations = 100 * setup.micro_batch * (1 if setup.checkpointing else 3)
    states = {0: 400, 1: 300, 2: 200, 3: 100}[setup.zero_stage]
    states -= 50 * setup.offload_optimizer + 40 * setup.offload_params
    return activations + states + 800 // setup.ranks


def fields(suggestion) -> list[tuple[str, object]]:
    return [(c.field, c.new) for c in suggestion.changes]


def test_checkpointing_comes_first():
    # base: 2400 + 200 + 200 = 2800; checkpointing alone: 800 + 400 = 1200.
    found = suggest(BASE, cost, capacity=1500)
    assert fields(found) == [("spec.training.gradientCheckpointing", True)]
    assert found.per_gpu_bytes == 1200 and found.setup.checkpointing


def test_largest_micro_batch_that_fits_and_keeps_the_global_batch_divisible():
    checkpointed = BASE.but(checkpointing=True)  # 800 + 400 = 1200
    # micro 4: 400 + 400 = 800; 7, 6, 5 would not divide 64 over 4 ranks.
    assert fields(suggest(checkpointed, cost, capacity=900)) == [("spec.training.microBatchSize", 4)]
    odd = checkpointed.but(global_batch=48, micro_batch=4)  # micro 3 divides 48 over 4 ranks
    assert fields(suggest(odd, cost, capacity=700)) == [("spec.training.microBatchSize", 3)]


def test_then_zero3_offloads_and_workers_in_that_order():
    tight = BASE.but(checkpointing=True, micro_batch=1)  # 100 + 200 + 200 = 500
    assert fields(suggest(tight, cost, capacity=400)) == [("spec.training.deepspeed.zeroStage", 3)]
    zero3 = tight.but(zero_stage=3)  # 400
    assert fields(suggest(zero3, cost, capacity=350)) == [("spec.training.deepspeed.offloadOptimizer", True)]
    offloaded = zero3.but(offload_optimizer=True)  # 350
    assert fields(suggest(offloaded, cost, capacity=310)) == [("spec.training.deepspeed.offloadParams", True)]
    everything = offloaded.but(offload_params=True)  # 310; workers: 200 -> 800 // w
    found = suggest(everything, cost, capacity=260)
    assert fields(found) == [("spec.resources.workers", 8)] and found.per_gpu_bytes == 210


def test_changes_combine_when_no_single_one_fits_and_unneeded_ones_are_dropped():
    def knobs(setup: Setup) -> int:  # checkpointing does not help here; micro-batch a little
        return 10 * setup.micro_batch + {2: 200, 3: 100}[setup.zero_stage] - 50 * setup.offload_optimizer + 200

    start = BASE.but(micro_batch=2, global_batch=8)  # 420; singles: micro 1 410, ZeRO-3 320, offload 370
    found = suggest(start, knobs, capacity=310)
    # Greedy: checkpointing (no help), micro-batch 1, ZeRO-3 -> fits; checkpointing is then dropped.
    assert fields(found) == [("spec.training.microBatchSize", 1), ("spec.training.deepspeed.zeroStage", 3)]
    assert found.per_gpu_bytes == 310 and not found.setup.checkpointing


def test_nothing_fits():
    assert suggest(BASE, cost, capacity=10) is None


def test_overrides_read_like_set_flags():
    assert Change("spec.training.gradientCheckpointing", False, True).as_override() == (
        "spec.training.gradientCheckpointing=true"
    )
    assert Change("spec.resources.workers", 8, 16).as_override() == "spec.resources.workers=16"
