"""What the throughput levers do to the memory plan: each moves the estimate the way its mechanism says."""

from __future__ import annotations

import pytest
import yaml

from vlmtune.plan.estimate import activation_bytes, estimate_memory
from vlmtune.plan.fit import suggest
from vlmtune.plan.memory import GIB, Setup, decoder_layer_bytes, logits_bytes, packed_mask_bytes
from vlmtune.plan.params import model_size
from vlmtune.train.chunk_size import chunk_rows
from vlmtune_model.shapes import LLAVA_7B, Shape

PARTS = ("projector", "language_model")
SMALL = Shape(
    "small",
    vision=dict(
        hidden_size=2, intermediate_size=4, num_hidden_layers=1, num_attention_heads=1, image_size=4, patch_size=2
    ),
    text=dict(
        vocab_size=10,
        hidden_size=4,
        intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
    ),
)


def setup(**changes) -> Setup:
    base = Setup(
        ranks=1, micro_batch=8, global_batch=16, seq_len=2048, precision="bf16", checkpointing=True, zero_stage=2
    )
    return base.but(**changes)


def test_chunked_loss_holds_one_chunk_and_no_logits_through_the_backward():
    full = activation_bytes(LLAVA_7B, PARTS, setup())
    chunked = activation_bytes(LLAVA_7B, PARTS, setup(chunked_loss=True))
    tokens, vocab = 8 * 2048, LLAVA_7B.text["vocab_size"]
    assert full.loss == logits_bytes(tokens, vocab) and full.held_logits == 2 * tokens * vocab
    assert chunked.held_logits == 0 and chunked.kept == full.kept
    assert chunked.loss == logits_bytes(chunk_rows(vocab), vocab) + 2 * tokens * 4096 * 2
    # The loss no longer sets the backward peak: the recomputed layer does (3 GiB below the logits' 6 GiB).
    assert chunked.peak == chunked.recomputed_layer and chunked.total == full.total - (full.loss - chunked.peak)
    assert full.total - chunked.total > 3 * GIB


def test_chunked_loss_by_hand_on_a_small_shape():
    # 16 tokens, vocab 10: one chunk holds all 16 rows (12 x 16 x 10); rows and their gradient 2 x 16 x 4 x 2.
    acts = activation_bytes(
        SMALL,
        PARTS,
        Setup(
            ranks=1,
            micro_batch=1,
            global_batch=1,
            seq_len=16,
            precision="bf16",
            checkpointing=False,
            zero_stage=2,
            chunked_loss=True,
        ),
    )
    assert acts.loss == 1920 + 256 and acts.held_logits == 0


def test_offloading_moves_the_kept_activations_to_the_host():
    layers = LLAVA_7B.text["num_hidden_layers"]
    kept = activation_bytes(LLAVA_7B, PARTS, setup(checkpoint_layers=8))
    moved = activation_bytes(LLAVA_7B, PARTS, setup(checkpoint_layers=8, offload_activations=True))
    layer = decoder_layer_bytes(8 * 2048, 4096, 11008)
    inputs, hidden = 8 * 2 * 8 * 2048 * 4096, 2 * 8 * 2048 * 4096
    assert moved.kept == inputs + hidden and moved.kept + moved.offloaded == kept.kept
    assert moved.offloaded > (layers - 8) * layer  # the 24 layers that keep activations, and more
    assert moved.recomputed_layer == layer  # one layer's activations come back for its backward
    assert moved.total < kept.total - 60 * GIB
    none = activation_bytes(LLAVA_7B, PARTS, setup(checkpointing=False, offload_activations=True))
    assert none.recomputed_layer == layer and none.kept == hidden


def test_packed_rows_under_sdpa_add_the_dense_mask_and_other_kernels_do_not():
    plain = activation_bytes(LLAVA_7B, PARTS, setup())
    dense = activation_bytes(LLAVA_7B, PARTS, setup(pack_samples=True, attention="sdpa"))
    assert dense.kept - plain.kept == packed_mask_bytes(8 * 2048) == 3 * (8 * 2048) ** 2
    for kernel in ("auto", "flash_attention_2", "flex_attention"):
        assert activation_bytes(LLAVA_7B, PARTS, setup(pack_samples=True, attention=kernel)) == plain


def test_the_breakdown_reports_host_memory():
    size = model_size(LLAVA_7B)
    estimate = estimate_memory(LLAVA_7B, size, PARTS, setup(checkpoint_layers=8, offload_activations=True))
    assert estimate.breakdown()["activations_offloaded_host"] == estimate.activations.offloaded > 0
    assert estimate.total < estimate_memory(LLAVA_7B, size, PARTS, setup(checkpoint_layers=8)).total


def test_the_chunked_loss_is_suggested_first_when_it_alone_fits():
    size = model_size(LLAVA_7B)

    def per_gpu(candidate: Setup) -> int:
        return estimate_memory(LLAVA_7B, size, PARTS, candidate).total

    start = setup(ranks=8, micro_batch=16, global_batch=128, zero_stage=3)
    capacity = (per_gpu(start) + per_gpu(start.but(chunked_loss=True))) // 2
    found = suggest(start, per_gpu, capacity)
    assert [(c.field, c.new) for c in found.changes] == [("spec.training.chunkedLoss", True)]


def test_the_job_file_reaches_the_plan(tmp_path, capsys):
    from vlmtune.cli import main

    doc = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "levers"},
        "spec": {
            "model": {"languageModel": "lmsys/vicuna-7b-v1.5", "visionTower": "openai/clip-vit-large-patch14-336"},
            "data": {"sources": [{"demo": {}}]},
            "training": {
                "globalBatchSize": 64,
                "microBatchSize": 8,
                "gradientCheckpointing": True,
                "checkpointLayers": 16,
                "chunkedLoss": True,
                "offloadActivations": True,
                "deepspeed": {"zeroStage": 3},
            },
            "resources": {"workers": 8, "gpusPerWorker": 1},
            "output": {"uri": "./runs/levers"},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    main(["plan", str(path), "--gpu", "h100-80gb"])
    text = capsys.readouterr().out
    assert "chunked loss, activations offloaded" in text and "(host) offloaded activations" in text
    assert "offloadActivations keeps" in text and "pinned host memory" in text


@pytest.mark.parametrize("field", ["chunked_loss", "offload_activations", "pack_samples"])
def test_the_planner_reads_every_memory_lever(field):
    from vlmtune.plan.planner import setup_of
    from vlmtune.spec import TuningJob

    training = {
        "globalBatchSize": 8,
        "chunkedLoss": field == "chunked_loss",
        "offloadActivations": field == "offload_activations",
        "packSamples": field == "pack_samples",
        "attention": "sdpa",
    }
    job = TuningJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": "x"},
            "spec": {
                "model": {"preset": "tiny"},
                "data": {"sources": [{"demo": {}}]},
                "training": training,
                "output": {"uri": "./runs/x"},
            },
        }
    )
    planned = setup_of(job)
    assert getattr(planned, field) is True and planned.attention == "sdpa"
    assert sum((planned.chunked_loss, planned.offload_activations, planned.pack_samples)) == 1
