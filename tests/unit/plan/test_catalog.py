"""Model shapes from hub ids, local config.json folders and references; never a download."""

from __future__ import annotations

import pytest

from vlmtune.plan.catalog import PlanError, resolve_shape
from vlmtune.spec import TuningJob
from vlmtune_model.shapes import LLAVA_13B


def job(name: str = "j", **model) -> TuningJob:
    return TuningJob.model_validate(
        {
            "apiVersion": "vlmtune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": name},
            "spec": {"model": model, "data": {"sources": [{"demo": {}}]}, "output": {"uri": "./runs/x"}},
        }
    )


def test_known_hub_ids():
    shape = resolve_shape(job(languageModel="lmsys/vicuna-13b-v1.5", visionTower="openai/clip-vit-large-patch14-336"))
    assert (shape.text, shape.vision) == (LLAVA_13B.text, LLAVA_13B.vision)
    assert shape.image_tokens == 576
    llava = resolve_shape(job(pretrained="llava-hf/llava-1.5-13b-hf"))
    assert llava.text["vocab_size"] == 32064 and llava.text["hidden_size"] == 5120
    assert (
        resolve_shape(
            job(languageModel="meta-llama/Llama-2-7b-hf", visionTower="openai/clip-vit-large-patch14")
        ).image_tokens
        == 256
    )


def test_preset_is_the_tied_tiny_model():
    assert resolve_shape(job(preset="tiny")).text["tie_word_embeddings"] is True


def test_local_folders_are_read_from_config_json(tmp_path):
    from transformers import CLIPVisionConfig, LlamaConfig

    LlamaConfig(
        hidden_size=96,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=500,
    ).save_pretrained(tmp_path / "lm")
    CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ).save_pretrained(tmp_path / "clip")
    shape = resolve_shape(job(languageModel=str(tmp_path / "lm"), visionTower=str(tmp_path / "clip")))
    assert shape.text["num_key_value_heads"] == 2 and shape.text["hidden_size"] == 96
    assert shape.vision["patch_size"] == 8 and shape.image_tokens == 16


@pytest.mark.parametrize(
    "model, field",
    [
        (
            {"languageModel": "someone/unknown-13b", "visionTower": "openai/clip-vit-large-patch14-336"},
            "spec.model.languageModel",
        ),
        ({"languageModel": "lmsys/vicuna-7b-v1.5", "visionTower": "s3://models/clip/"}, "spec.model.visionTower"),
        ({"pretrained": "s3://models/llava/"}, "spec.model.pretrained"),
    ],
)
def test_unknown_models_name_the_field_and_suggest_shape(model, field):
    with pytest.raises(PlanError) as err:
        resolve_shape(job(**model))
    assert err.value.field == field and "--shape" in err.value.fix


def test_shape_override_and_upstream_jobs():
    unknown = job(languageModel="someone/unknown-13b", visionTower="openai/clip-vit-large-patch14-336")
    assert resolve_shape(unknown, override="llava-13b").name == "llava-13b"
    with pytest.raises(PlanError, match="unknown shape"):
        resolve_shape(unknown, override="llava-70b")
    stage1 = job("stage1", pretrained="llava-hf/llava-1.5-13b-hf")
    stage2 = job("stage2", **{"from": {"job": "stage1"}})
    assert resolve_shape(stage2, {"stage1": stage1}).text["hidden_size"] == 5120
    with pytest.raises(PlanError) as err:
        resolve_shape(stage2, {})
    assert err.value.field == "spec.model.from.job"
