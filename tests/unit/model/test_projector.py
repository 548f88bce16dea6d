"""Projector kinds (`linear` inside transformers' two-layer projector) and LLaVA-1.5 projector files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

from vlmtune_model import (
    build_tiny,
    load_export,
    load_projector_weights,
    save_export,
    set_trainable,
)

VISION, TEXT = 64, 128  # the tiny preset's hidden sizes


def llava_projector_file(path, kind: str = "mlp2x_gelu", prefix: str = "model.mm_projector.", seed: int = 7):
    """A projector file in LLaVA's own layout (what its stage 1 writes as mm_projector.bin), fp16 like LLaVA's."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"0.weight": (TEXT, VISION), "0.bias": (TEXT,), "2.weight": (TEXT, TEXT), "2.bias": (TEXT,)}
    if kind == "linear":
        shapes = {"weight": (TEXT, VISION), "bias": (TEXT,)}
    state = {prefix + name: torch.randn(shape, generator=generator).half() for name, shape in shapes.items()}
    if str(path).endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


def test_linear_projector_is_one_linear_layer_and_keeps_it_through_training():
    built = build_tiny(projector="linear")
    projector = built.model.model.multi_modal_projector
    assert built.projector == "linear" and built.model.config.projector_hidden_act == "linear"
    features = torch.randn(3, VISION)
    assert torch.allclose(
        projector(features),
        torch.nn.functional.linear(features, projector.linear_1.weight, projector.linear_1.bias),
        atol=1e-6,
    )
    counts = set_trainable(built.model, ["projector"])
    assert counts["projector"] == VISION * TEXT + TEXT  # linear_1 only
    assert not any(p.requires_grad for p in projector.linear_2.parameters())
    assert build_tiny(projector="mlp2x_gelu").projector == "mlp2x_gelu"


def test_linear_projector_export_loads_with_from_pretrained(tmp_path):
    built = build_tiny(seed=2, projector="linear")
    save_export(built, built.model.state_dict(), tmp_path)
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.config.projector_hidden_act == "linear"
    features = torch.randn(2, 5, VISION)
    with torch.no_grad():
        assert torch.allclose(
            loaded.model.multi_modal_projector(features), built.model.model.multi_modal_projector(features), atol=1e-6
        )
    again = load_export(str(tmp_path))
    assert again.projector == "linear"
    set_trainable(again.model, ["projector"])
    assert not again.model.model.multi_modal_projector.linear_2.weight.requires_grad


@pytest.mark.parametrize(
    "kind, name",
    [("mlp2x_gelu", "mm_projector.bin"), ("linear", "mm_projector.bin"), ("mlp2x_gelu", "mm_projector.safetensors")],
)
def test_llava_projector_file_lands_in_the_hf_projector(tmp_path, kind, name):
    state = llava_projector_file(tmp_path / name, kind)
    built = build_tiny(projector=kind)
    load_projector_weights(built.model, tmp_path / name)
    projector = built.model.model.multi_modal_projector
    first = "model.mm_projector.0." if kind == "mlp2x_gelu" else "model.mm_projector."
    assert torch.equal(projector.linear_1.weight, state[first + "weight"].float())
    assert torch.equal(projector.linear_1.bias, state[first + "bias"].float())
    if kind == "mlp2x_gelu":
        assert torch.equal(projector.linear_2.weight, state["model.mm_projector.2.weight"].float())
        assert torch.equal(projector.linear_2.bias, state["model.mm_projector.2.bias"].float())
    else:
        assert torch.equal(projector.linear_2.weight, torch.eye(TEXT))


def test_file_without_model_prefix_is_accepted(tmp_path):
    state = llava_projector_file(tmp_path / "p.bin", prefix="mm_projector.")
    built = build_tiny()
    load_projector_weights(built.model, tmp_path / "p.bin")
    assert torch.equal(built.model.model.multi_modal_projector.linear_2.bias, state["mm_projector.2.bias"].float())


def test_projector_of_the_other_kind_says_which_to_set(tmp_path):
    llava_projector_file(tmp_path / "linear.bin", "linear")
    with pytest.raises(ValueError, match=r"expected LLaVA mlp2x_gelu projector keys .*set projector: linear"):
        load_projector_weights(build_tiny().model, tmp_path / "linear.bin", source="spec.model.projectorWeights")


def test_file_without_projector_keys_lists_what_it_expected(tmp_path):
    torch.save({"model.layers.0.weight": torch.zeros(2)}, tmp_path / "not_a_projector.bin")
    with pytest.raises(ValueError, match=r"model\.mm_projector\.0\.weight.*found none"):
        load_projector_weights(build_tiny().model, tmp_path / "not_a_projector.bin")


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    torch.save(
        {
            "model.mm_projector.0.weight": torch.zeros(TEXT, 1024),
            "model.mm_projector.0.bias": torch.zeros(TEXT),
            "model.mm_projector.2.weight": torch.zeros(TEXT, TEXT),
            "model.mm_projector.2.bias": torch.zeros(TEXT),
        },
        tmp_path / "clip_large.bin",
    )
    before = build_tiny().model.model.multi_modal_projector.linear_2.weight.clone()
    built = build_tiny()
    with pytest.raises(ValueError, match=r"model\.mm_projector\.0\.weight has shape \(128, 1024\).*needs \(128, 64\)"):
        load_projector_weights(built.model, tmp_path / "clip_large.bin")
    # Checked before anything is copied: a failed load leaves the projector as it was.
    assert torch.equal(built.model.model.multi_modal_projector.linear_2.weight, before)
