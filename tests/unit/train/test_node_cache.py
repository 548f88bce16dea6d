"""The per-node cache of s3:// model parts, against a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from s3_server import running_s3
from vlmtune import storage
from vlmtune.node_cache import fetch, local_copy
from vlmtune.spec import LoraSpec
from vlmtune.train.model_source import ModelSource, build, processor_config

pytest.importorskip("moto.server")
BUCKET = "models"


@pytest.fixture(scope="module")
def s3():
    with running_s3(BUCKET) as server:
        yield server.endpoint


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("VLMTUNE_CACHE", str(folder))
    return folder


def upload_model(tmp_path: Path, name: str, weight_bytes: int = 1 << 20) -> str:
    source = tmp_path / name
    (source / "tokenizer").mkdir(parents=True)
    (source / "config.json").write_text('{"model_type": "llava"}')
    (source / "tokenizer" / "tokenizer.json").write_text("{}")
    (source / "model.safetensors").write_bytes(os.urandom(weight_bytes))
    uri = f"s3://{BUCKET}/{name}"
    storage.upload_dir(source, uri)
    return uri


def test_concurrent_workers_on_a_node_download_once(s3, cache, tmp_path):
    uri = upload_model(tmp_path, "vicuna", weight_bytes=16 << 20)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        first, second = pool.map(fetch, [uri, uri])
    assert sorted([first.downloaded, second.downloaded]) == [False, True]
    path = first.path
    assert path == second.path and path.is_relative_to(cache)
    assert (path / "model.safetensors").read_bytes() == (tmp_path / "vicuna" / "model.safetensors").read_bytes()
    assert (path / "tokenizer" / "tokenizer.json").read_text() == "{}"
    assert fetch(uri).downloaded is False  # and later calls on the node find it too
    assert not list(cache.glob("remote/*.partial"))


def test_config_only_copy_leaves_weights_out(s3, cache, tmp_path):
    uri = upload_model(tmp_path, "export")
    folder = Path(local_copy(uri, weights=False))
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["config.json", "tokenizer.json"]
    assert Path(local_copy(uri)) != folder and (Path(local_copy(uri)) / "model.safetensors").exists()


def test_a_reuploaded_model_is_fetched_again(s3, cache, tmp_path):
    uri = upload_model(tmp_path, "changing")
    first = fetch(uri)
    (tmp_path / "changing" / "model.safetensors").write_bytes(b"new weights")
    storage.upload_dir(tmp_path / "changing", uri)
    second = fetch(uri)
    assert second.downloaded and second.path != first.path
    assert (second.path / "model.safetensors").read_bytes() == b"new weights"


def test_single_file_and_missing_uri(s3, cache, tmp_path):
    storage.write_bytes(f"s3://{BUCKET}/projectors/mm_projector.bin", b"projector")
    fetched = fetch(f"s3://{BUCKET}/projectors/mm_projector.bin")
    assert fetched.path.name == "mm_projector.bin" and fetched.path.read_bytes() == b"projector"
    with pytest.raises(FileNotFoundError, match="s3://models/nothing-here"):
        fetch(f"s3://{BUCKET}/nothing-here")


def test_local_paths_and_hub_ids_pass_through(cache, tmp_path):
    assert local_copy(str(tmp_path)) == str(tmp_path)
    assert local_copy("lmsys/vicuna-13b-v1.5") == "lmsys/vicuna-13b-v1.5"
    assert not cache.exists()


def test_model_parts_from_s3_build_with_projector_weights_and_lora(s3, cache, tmp_path):
    """model_source.build on a worker: projector file fetched from s3 into the cache, then LoRA on top."""
    state = {
        "model.mm_projector.0.weight": torch.randn(128, 64),
        "model.mm_projector.0.bias": torch.randn(128),
        "model.mm_projector.2.weight": torch.randn(128, 128),
        "model.mm_projector.2.bias": torch.randn(128),
    }
    torch.save(state, tmp_path / "mm_projector.bin")
    uri = f"s3://{BUCKET}/llava-v1.5-pretrain/mm_projector.bin"
    storage.write_bytes(uri, (tmp_path / "mm_projector.bin").read_bytes())
    built = build(ModelSource("tiny", projector_weights=uri, lora=LoraSpec(rank=4)), seed=0)
    projector = built.model.model.multi_modal_projector
    assert torch.equal(projector.linear_1.weight, state["model.mm_projector.0.weight"])
    assert torch.equal(projector.linear_2.bias, state["model.mm_projector.2.bias"])
    assert built.lora is not None and built.lora.settings.rank == 4
    assert list(cache.glob("remote/*/mm_projector.bin"))


def test_language_model_and_vision_tower_from_s3(s3, cache, tmp_path):
    """Parts on s3: the driver and data workers read config and tokenizer only, workers fetch the weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from vlmtune_model import tiny_tokenizer

    tokenizer = tiny_tokenizer()
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
            vocab_size=len(tokenizer),
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
    storage.upload_dir(tmp_path / "vision", f"s3://{BUCKET}/parts/vision")
    storage.upload_dir(tmp_path / "lm", f"s3://{BUCKET}/parts/lm")
    source = ModelSource(
        "parts",
        language_model=f"s3://{BUCKET}/parts/lm",
        vision_tower=f"s3://{BUCKET}/parts/vision",
        projector="linear",
        lora=LoraSpec(rank=2),
    )

    config = processor_config(source, max_length=64)
    assert (config.tokenizer, config.image_size, config.image_tokens) == (source.language_model, 32, 16)
    assert config.load_tokenizer().get_vocab() == tokenizer.get_vocab()
    assert not list(cache.glob("remote/*/model.safetensors"))  # nothing but config and tokenizer so far

    built = build(source, seed=0)
    assert built.projector == "linear" and built.lora is not None
    weight = language.model.embed_tokens.weight
    assert torch.equal(built.model.model.language_model.embed_tokens.weight[: weight.shape[0]], weight)
    assert len(list(cache.glob("remote/*/model.safetensors"))) == 2
