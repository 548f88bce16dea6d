"""LoRA on the tiny LLaVA: adapters only in the language model, frozen base, merged export, peft adapter."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from vlmtune_model import (
    LoraSettings,
    apply_lora,
    build_tiny,
    save_export,
    set_trainable,
)
from vlmtune_model.lora import merged_state_dict

peft = pytest.importorskip("peft")
SETTINGS = LoraSettings(rank=4, alpha=8, dropout=0.0)


def tiny_batch(built, batch: int = 2, text: int = 5):
    image_id = built.model.config.image_token_index
    ids = torch.cat([torch.full((batch, built.image_tokens), image_id), torch.randint(1000, 2000, (batch, text))], 1)
    size = built.image_spec.size
    return ids, torch.randn(batch, 3, size, size)


def trained_lora(seed: int = 0, steps: int = 3):
    """The tiny model with adapters, a few AdamW steps taken on what `set_trainable` left trainable."""
    built = apply_lora(build_tiny(seed=seed), SETTINGS)
    set_trainable(built.model, ["projector", "language_model"])
    optimizer = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=1e-2)
    torch.manual_seed(1)
    ids, pixels = tiny_batch(built)
    for _ in range(steps):
        built.model(input_ids=ids, pixel_values=pixels, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    built.model.eval()
    return built, ids, pixels


def test_adapters_only_in_the_language_model():
    built = apply_lora(build_tiny(), SETTINGS)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in built.model.named_parameters() if ".lora_A." in name}
    assert adapted and all(name.startswith("model.language_model.layers.") for name in adapted)
    # 2 layers x the 7 linear layers of a Llama block; the CLIP tower's q/k/v_proj stay plain.
    assert len(adapted) == 2 * 7
    assert built.lora.settings.scaling == 2.0


def test_set_trainable_trains_adapters_and_projector_but_not_base_weights():
    built = apply_lora(build_tiny(), SETTINGS)
    counts = set_trainable(built.model, ["projector", "language_model"])
    trainable = {name for name, p in built.model.named_parameters() if p.requires_grad}
    assert trainable == {
        name for name, _ in built.model.named_parameters() if ".lora_" in name or "multi_modal_projector" in name
    }
    # r x (in + out) per adapted layer: q,o 128->128; k,v 128->64; gate,up 128->384; down 384->128.
    per_layer = 4 * (2 * (128 + 128) + 2 * (128 + 64) + 2 * (128 + 384) + (384 + 128))
    assert counts == {"vision_tower": 0, "projector": 64 * 128 + 128 + 128 * 128 + 128, "language_model": 2 * per_layer}
    assert set_trainable(built.model, ["projector"])["language_model"] == 0


def test_unknown_target_module_lists_the_language_models_layers():
    with pytest.raises(ValueError, match=r"lora.targetModules \['query_key_value'\] match no linear layer.*q_proj"):
        apply_lora(build_tiny(), LoraSettings(rank=4, target_modules=("q_proj", "query_key_value")))
    with pytest.raises(ValueError, match="out_proj"):  # CLIP's layer name: not a language-model layer
        apply_lora(build_tiny(), LoraSettings(rank=4, target_modules=("out_proj",)))


def test_training_moves_adapters_and_projector_only():
    base = build_tiny(seed=0).model.state_dict()
    built, _, _ = trained_lora()
    for name, value in built.model.state_dict().items():
        plain = name.replace(".base_layer.", ".")
        if ".lora_B." in name or "multi_modal_projector" in name:
            assert not torch.equal(value, base.get(plain, torch.zeros_like(value))), name
        elif ".lora_" not in name:
            assert torch.equal(value, base[plain]), name


def test_merged_state_dict_equals_peft_merge_and_unload():
    built, _, _ = trained_lora()
    ours = merged_state_dict(built.model.state_dict(), SETTINGS.scaling)
    reference = copy.deepcopy(built.lora.peft_model).merge_and_unload().state_dict()
    assert ours.keys() == reference.keys()
    for name in reference:
        assert torch.allclose(ours[name], reference[name], atol=1e-6), name


def test_export_merges_adapters_and_loads_with_plain_from_pretrained(tmp_path):
    built, ids, pixels = trained_lora()
    save_export(built, built.model.state_dict(), tmp_path)
    loaded, info = LlavaForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert torch.allclose(
            built.model(input_ids=ids, pixel_values=pixels).logits,
            loaded(input_ids=ids, pixel_values=pixels).logits,
            atol=1e-4,
        )
    assert not any(".lora_" in name for name in loaded.state_dict())


def test_adapter_alone_loads_with_peft_onto_the_starting_model(tmp_path):
    built, ids, pixels = trained_lora(seed=5)
    save_export(built, built.model.state_dict(), tmp_path)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    start = build_tiny(seed=5).model
    # The adapter leaves the projector out: give the starting model the trained one to compare outputs.
    start.model.multi_modal_projector.load_state_dict(built.model.model.multi_modal_projector.state_dict())
    adapted = peft.PeftModel.from_pretrained(start, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(
            built.model(input_ids=ids, pixel_values=pixels).logits,
            adapted(input_ids=ids, pixel_values=pixels).logits,
            atol=1e-4,
        )


def test_adapters_get_gradients_under_activation_checkpointing_with_everything_else_frozen():
    """Only LoRA trains (projector frozen), so nothing before the checkpointed layers needs a gradient."""
    built = apply_lora(build_tiny(), SETTINGS)
    set_trainable(built.model, ["language_model"])
    built.model.gradient_checkpointing_enable()
    built.model.train()
    ids, pixels = tiny_batch(built)
    built.model(input_ids=ids, pixel_values=pixels, labels=ids).loss.backward()
    # lora_B starts at zero (so lora_A's first gradient is zero too); its gradient shows the path is live.
    grads = [p.grad for name, p in built.model.named_parameters() if ".lora_B." in name]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
