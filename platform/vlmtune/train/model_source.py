"""Where a job's model comes from, and the facts preprocessing needs about it.

Remote parts (s3://) are downloaded once per node into the node cache (`vlmtune.node_cache`); the
driver and the data workers read only the small files (config, tokenizer), training workers fetch
the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vlmtune import storage
from vlmtune.data.preprocess import ProcessorConfig
from vlmtune.node_cache import local_copy
from vlmtune.spec import LoraSpec, ModelSpec, Preset
from vlmtune_model.shapes import TINY


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: the tiny preset, a complete LLaVA export, or parts to assemble."""

    kind: str  # "tiny" | "export" | "parts"
    uri: str | None = None  # export: hub id, s3:// or local folder
    language_model: str | None = None
    vision_tower: str | None = None
    projector: str = "mlp2x_gelu"
    projector_weights: str | None = None  # a LLaVA projector file, local or s3://
    lora: LoraSpec | None = None


def model_source(spec: ModelSpec, upstream_model_uri: str | None = None) -> ModelSource:
    """Resolve `spec.model`; `from: {job}` must already be resolved to `upstream_model_uri`."""
    common = {"projector": spec.projector.value, "projector_weights": spec.projector_weights, "lora": spec.lora}
    if spec.preset is Preset.tiny:
        return ModelSource("tiny", **common)
    if spec.from_ is not None:
        if upstream_model_uri is None:
            raise ValueError(f"spec.model.from.job: {spec.from_.job!r} has no exported model yet")
        return ModelSource("export", uri=upstream_model_uri, **common)
    if spec.pretrained:
        return ModelSource("export", uri=spec.pretrained, **common)
    return ModelSource("parts", language_model=spec.language_model, vision_tower=spec.vision_tower, **common)


def processor_config(source: ModelSource, max_length: int) -> ProcessorConfig:
    """Image size, image tokens and tokenizer location, without loading weights.

    Raises:
        ValueError: an export's projector differs from `spec.model.projector`.
    """
    if source.kind == "tiny":
        return ProcessorConfig("tiny", TINY.image_size, TINY.image_tokens, max_length)
    if source.kind == "export":
        folder = local_copy(source.uri, weights=False)
        config = _read_config(folder)
        _check_export_projector(source, config)
        vision = config["vision_config"]
        extra = config.get("vision_feature_select_strategy") == "full"
        # Data workers may run on other nodes: they get the URI and fetch the tokenizer there.
        tokenizer = source.uri if storage.is_remote(source.uri) else folder
        return ProcessorConfig(
            tokenizer, vision["image_size"], (vision["image_size"] // vision["patch_size"]) ** 2 + extra, max_length
        )
    from transformers import AutoConfig

    vision = AutoConfig.from_pretrained(local_copy(source.vision_tower, weights=False))
    vision = getattr(vision, "vision_config", vision)
    return ProcessorConfig(
        source.language_model, vision.image_size, (vision.image_size // vision.patch_size) ** 2, max_length
    )


def build(source: ModelSource, seed: int):
    """Build the model on a worker (imports torch/transformers only here): weights, projector file, LoRA."""
    import torch

    from vlmtune_model import (
        LoraSettings,
        apply_lora,
        build_from_parts,
        build_tiny,
        load_export,
        load_projector_weights,
    )

    if source.kind == "tiny":
        built = build_tiny(seed=seed, projector=source.projector)
    elif source.kind == "export":
        built = load_export(local_copy(source.uri))
    else:
        torch.manual_seed(seed)  # the projector's random init, the same on every rank
        built = build_from_parts(local_copy(source.language_model), local_copy(source.vision_tower), source.projector)
    if source.projector_weights is not None:
        load_projector_weights(
            built.model,
            local_copy(source.projector_weights),
            source=f"spec.model.projectorWeights ({source.projector_weights})",
        )
    if source.lora is not None:
        lora = source.lora
        built = apply_lora(built, LoraSettings(lora.rank, lora.alpha, lora.dropout, tuple(lora.target_modules)))
    return built


def _check_export_projector(source: ModelSource, config: dict) -> None:
    # transformers' LLaVA config has no projector type; vlmtune writes `linear` as the identity activation.
    exported = "linear" if config.get("projector_hidden_act") == "linear" else "mlp2x_gelu"
    if exported != source.projector:
        raise ValueError(
            f"spec.model.projector: {source.projector!r}, but the model at {source.uri} has a "
            f"{exported!r} projector; set `projector: {exported}`"
        )


def _read_config(folder: str) -> dict:
    path = Path(folder) / "config.json"
    if path.exists():
        return json.loads(path.read_text())
    from transformers import AutoConfig  # a hub id

    return AutoConfig.from_pretrained(folder).to_dict()
