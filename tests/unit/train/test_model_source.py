"""Resolving `spec.model` to a source, and what the driver reads about it before training."""

from __future__ import annotations

import pytest

from vlmtune.spec import ModelSpec
from vlmtune.train.model_source import (
    ModelSource,
    build,
    model_source,
    processor_config,
)
from vlmtune_model import build_tiny, save_export


@pytest.fixture(scope="module")
def linear_export(tmp_path_factory):
    built = build_tiny(seed=4, projector="linear")
    return str(save_export(built, built.model.state_dict(), tmp_path_factory.mktemp("export")))


def test_spec_settings_travel_with_the_source():
    spec = ModelSpec.model_validate(
        {
            "languageModel": "lm",
            "visionTower": "vt",
            "projector": "linear",
            "projectorWeights": "s3://b/mm_projector.bin",
            "lora": {"rank": 8},
        }
    )
    source = model_source(spec)
    assert (source.kind, source.projector, source.projector_weights, source.lora.rank) == (
        "parts",
        "linear",
        "s3://b/mm_projector.bin",
        8,
    )
    assert model_source(ModelSpec.model_validate({"pretrained": "/m"})).lora is None


def test_export_keeps_its_projector_and_a_mismatch_is_caught_before_training(linear_export):
    config = processor_config(ModelSource("export", uri=linear_export, projector="linear"), max_length=64)
    assert config.tokenizer == linear_export and config.image_tokens == 64
    with pytest.raises(
        ValueError, match=r"spec.model.projector: 'mlp2x_gelu'.*'linear' projector; set `projector: linear`"
    ):
        processor_config(ModelSource("export", uri=linear_export), max_length=64)
    built = build(ModelSource("export", uri=linear_export, projector="linear"), seed=0)
    assert built.projector == "linear" and not built.model.model.multi_modal_projector.linear_2.weight.requires_grad
