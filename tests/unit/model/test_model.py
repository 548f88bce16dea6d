"""The tiny LLaVA: forward pass, trainable parts, export round trip, assembly from local parts."""

from __future__ import annotations

import torch
from transformers import (
    AutoProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
)

from vlmtune_model import build_from_parts, build_tiny, load_export, save_export, set_trainable


def tiny_batch(built, batch: int = 2, text: int = 5):
    image_id = built.model.config.image_token_index
    ids = torch.cat([torch.full((batch, built.image_tokens), image_id), torch.randint(1000, 2000, (batch, text))], 1)
    size = built.image_spec.size
    return ids, torch.randn(batch, 3, size, size)


def test_tiny_preset_is_small_and_deterministic():
    first, second = build_tiny(seed=3), build_tiny(seed=3)
    params = sum(p.numel() for p in first.model.parameters())
    assert 1_000_000 < params < 10_000_000
    assert first.image_tokens == 64 and first.image_spec.size == 64
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_forward_pass_gives_logits_and_a_loss():
    built = build_tiny()
    ids, pixels = tiny_batch(built)
    out = built.model(input_ids=ids, pixel_values=pixels, labels=ids)
    assert out.logits.shape == (2, ids.shape[1], len(built.tokenizer))
    assert torch.isfinite(out.loss) and out.loss.item() > 5  # random init: near log(vocab)
    out.loss.backward()


def test_trainable_parts_freeze_the_rest():
    built = build_tiny()
    counts = set_trainable(built.model, ["projector"])
    assert counts["vision_tower"] == 0 and counts["language_model"] == 0 and counts["projector"] > 0
    trainable = {name for name, p in built.model.named_parameters() if p.requires_grad}
    assert trainable and all("multi_modal_projector" in name for name in trainable)


def test_export_loads_with_from_pretrained(tmp_path):
    built = build_tiny(seed=1)
    save_export(built, built.model.state_dict(), tmp_path)
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(processor).__name__ == "LlavaProcessor"
    ids, pixels = tiny_batch(built, batch=1)
    with torch.no_grad():
        assert torch.allclose(
            built.model(input_ids=ids, pixel_values=pixels).logits,
            loaded(input_ids=ids, pixel_values=pixels).logits,
            atol=1e-5,
        )
    again = load_export(str(tmp_path))
    assert again.image_tokens == built.image_tokens


def test_assembly_from_local_language_model_and_vision_tower(tmp_path):
    """The pretrained-parts path, with tiny parts saved locally instead of hub downloads."""
    tokenizer = build_tiny().tokenizer
    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    )
    language = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer) - 1,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    vision.save_pretrained(tmp_path / "vision")
    language.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    built = build_from_parts(str(tmp_path / "lm"), str(tmp_path / "vision"))
    assert built.image_tokens == 16
    lm_weight = language.model.embed_tokens.weight
    assert torch.equal(built.model.model.language_model.embed_tokens.weight[: lm_weight.shape[0]], lm_weight)
    assert torch.equal(
        built.model.model.vision_tower.state_dict()["embeddings.patch_embedding.weight"],
        vision.state_dict()["embeddings.patch_embedding.weight"],
    )
