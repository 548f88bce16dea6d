"""Model-state bytes: hand-computed cases, and DeepSpeed's own estimators byte for byte."""

from __future__ import annotations

import re

import pytest

from vlmtune.plan.memory import Setup, model_state_bytes

stage12 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")

# (total params, largest module's params, GPUs per node, nodes): the 13B and 7B LLaVA shapes, the
# tiny preset, and awkward numbers that exercise DeepSpeed's rounding.
CASES = [
    (13_350_839_296, 163_840_000, 8, 1),
    (7_063_427_072, 131_334_144, 4, 2),
    (4_442_496, 3_907_072, 1, 1),
    (1_000_003, 77_777, 3, 5),
]


def setup(
    ranks: int, stage: int, *, precision: str = "bf16", offload_optimizer: bool = False, offload_params: bool = False
) -> Setup:
    return Setup(
        ranks=ranks,
        micro_batch=1,
        global_batch=ranks,
        seq_len=16,
        precision=precision,
        checkpointing=False,
        zero_stage=stage,
        offload_optimizer=offload_optimizer,
        offload_params=offload_params,
    )


@pytest.mark.parametrize("params, largest, per_node, nodes", CASES)
@pytest.mark.parametrize("offload", [False, True])
def test_zero2_matches_deepspeed(params, largest, per_node, nodes, offload):
    _, deepspeed_gpu = stage12.estimate_zero2_model_states_mem_needs(
        total_params=params, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=offload
    )
    ours = model_state_bytes(params, 0, largest, setup(per_node * nodes, 2, offload_optimizer=offload))
    assert ours.total == deepspeed_gpu


@pytest.mark.parametrize("params, largest, per_node, nodes", CASES)
@pytest.mark.parametrize("offload_optimizer, offload_params", [(False, False), (True, False), (True, True)])
def test_zero3_matches_deepspeed(params, largest, per_node, nodes, offload_optimizer, offload_params):
    _, deepspeed_gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
        total_params=params,
        largest_layer_params=largest,
        num_gpus_per_node=per_node,
        num_nodes=nodes,
        cpu_offload=offload_optimizer,
        cpu_offload_params=offload_params,
    )
    ours = model_state_bytes(
        params,
        0,
        largest,
        setup(per_node * nodes, 3, offload_optimizer=offload_optimizer, offload_params=offload_params),
    )
    assert ours.total == deepspeed_gpu


def printed_gpu_gib(text: str) -> dict[str, float]:
    """The per-GPU column of the table the `_all_cold` estimators print, by option string."""
    rows = re.findall(r"^\s*[\d.]+GB \|\s*([\d.]+)GB \| (.+)$", text, flags=re.MULTILINE)
    # Options read like "offload_param=OffloadDeviceEnum.cpu, offload_optimizer=none, zero_init=1".
    return {re.sub(r"OffloadDeviceEnum\.|\s", "", options): float(gib) for gib, options in rows}


def test_printed_tables_of_the_all_cold_estimators_agree(capsys):
    params, largest, per_node, nodes = CASES[0]
    stage12.estimate_zero2_model_states_mem_needs_all_cold(params, per_node, nodes)
    zero2 = printed_gpu_gib(capsys.readouterr().out)
    stage3.estimate_zero3_model_states_mem_needs_all_cold(params, largest, per_node, nodes)
    zero3 = printed_gpu_gib(capsys.readouterr().out)
    assert len(zero2) == 2 and len(zero3) == 6

    def ours(stage, **offload):
        return round(model_state_bytes(params, 0, largest, setup(8, stage, **offload)).total / 2**30, 2)

    assert zero2["offload_optimizer=none"] == ours(2)
    assert zero2["offload_optimizer=cpu"] == ours(2, offload_optimizer=True)
    for zero_init in (0, 1):
        assert zero3[f"offload_param=none,offload_optimizer=none,zero_init={zero_init}"] == ours(3)
        assert zero3[f"offload_param=none,offload_optimizer=cpu,zero_init={zero_init}"] == ours(
            3, offload_optimizer=True
        )
        assert zero3[f"offload_param=cpu,offload_optimizer=cpu,zero_init={zero_init}"] == ours(
            3, offload_optimizer=True, offload_params=True
        )


# 1,000 trainable + 500 frozen parameters, largest module 100, 4 ranks, bf16 (bytes per trainable
# parameter: weight 2, 16-bit grad 2, fp32 grad 4, fp32 master 4, Adam 8; frozen: weight 2).
@pytest.mark.parametrize(
    "stage, offload, expected",
    [
        (0, {}, {"params": 3000, "gradients": 6000, "optimizer": 12000, "zero_buffers": 0, "total": 21000}),
        (1, {}, {"params": 3000, "gradients": 2000 + 1000, "optimizer": 3000, "zero_buffers": 0, "total": 9000}),
        (2, {}, {"params": 3000, "gradients": 1500, "optimizer": 3000, "zero_buffers": 0, "total": 7500}),
        (
            2,
            {"offload_optimizer": True},
            {"params": 3000, "gradients": 0, "optimizer": 0, "zero_buffers": 0, "total": 3000},
        ),
        (3, {}, {"params": 750, "gradients": 1000, "optimizer": 3000, "zero_buffers": 400, "total": 5150}),
        (
            3,
            {"offload_optimizer": True},
            {"params": 750, "gradients": 0, "optimizer": 0, "zero_buffers": 400, "total": 1150},
        ),
        (
            3,
            {"offload_optimizer": True, "offload_params": True},
            {"params": 0, "gradients": 0, "optimizer": 0, "zero_buffers": 400, "total": 400},
        ),
    ],
)
def test_hand_computed_mixed_precision(stage, offload, expected):
    states = model_state_bytes(1000, 500, 100, setup(4, stage, **offload))
    assert vars(states) == expected


def test_fp32_has_no_16bit_copies():
    # weight 4 (replicated), fp32 grad 4 / 4 ranks, Adam 8 / 4 ranks.
    states = model_state_bytes(1000, 500, 100, setup(4, 2, precision="fp32"))
    assert (states.params, states.gradients, states.optimizer, states.total) == (6000, 1000, 2000, 9000)


def test_frozen_parameters_only_hold_their_weights():
    for stage, ranks in ((2, 4), (3, 4)):
        with_frozen = model_state_bytes(1000, 800, 100, setup(ranks, stage)).total
        without = model_state_bytes(1000, 0, 100, setup(ranks, stage)).total
        assert with_frozen - without == (2 * 800 if stage < 3 else 2 * 800 // ranks)


def test_offload_the_stage_cannot_do_is_refused():
    with pytest.raises(ValueError, match="stage 1, 2 or 3"):
        model_state_bytes(10, 0, 1, setup(2, 0, offload_optimizer=True))
    with pytest.raises(ValueError, match="stage 3"):
        model_state_bytes(10, 0, 1, setup(2, 2, offload_optimizer=True, offload_params=True))
