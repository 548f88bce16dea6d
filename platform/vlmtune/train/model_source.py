"""Where a job's model comes from, and the facts preprocessing needs about it.

Remote models (s3://) are downloaded once per node into a cache keyed by URI; the driver only
reads the small files (config, tokenizer), workers fetch the weights.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlmtune import storage
from vlmtune.data.preprocess import ProcessorConfig
from vlmtune.spec import ModelSpec, Preset

TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: the tiny preset, a complete LLaVA export, or parts to assemble."""

    kind: str  # "tiny" | "export" | "parts"
    uri: str | None = None  # export: hub id, s3:// or local folder
    language_model: str | None = None
    vision_tower: str | None = None
    projector: str = "mlp2x_gelu"


def model_source(spec: ModelSpec, upstream_model_uri: str | None = None) -> ModelSource:
    """Resolve `spec.model`; `from: {job}` must already be resolved to `upstream_model_uri`."""
    if spec.preset is Preset.tiny:
        return ModelSource("tiny")
    if spec.from_ is not None:
        if upstream_model_uri is None:
            raise ValueError(f"spec.model.from.job: {spec.from_.job!r} has no exported model yet")
        return ModelSource("export", uri=upstream_model_uri)
    if spec.pretrained:
        return ModelSource("export", uri=spec.pretrained)
    return ModelSource("parts", language_model=spec.language_model, vision_tower=spec.vision_tower,
                       projector=spec.projector.value)


def local_copy(uri: str) -> str:
    """A local folder for `uri`: local paths and hub ids pass through, s3:// is downloaded once per node."""
    if not storage.is_remote(uri):
        local = storage.local_path(uri)
        return str(local) if local is not None and local.exists() else uri
    cache = Path(os.environ.get("VLMTUNE_CACHE", Path.home() / ".cache" / "vlmtune")) / "models"
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        # Workers on one node share the download instead of racing for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            storage.download_dir(uri, target)
            (target / ".complete").write_text(uri)
    return str(target)


def processor_config(source: ModelSource, max_length: int) -> ProcessorConfig:
    """Image size, image tokens and tokenizer location, without loading weights."""
    if source.kind == "tiny":
        return ProcessorConfig("tiny", TINY_IMAGE_SIZE, (TINY_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2, max_length)
    if source.kind == "export":
        folder = local_copy(source.uri)
        config = _read_config(folder)
        vision = config["vision_config"]
        extra = config.get("vision_feature_select_strategy") == "full"
        return ProcessorConfig(folder, vision["image_size"], (vision["image_size"] // vision["patch_size"]) ** 2 + extra,
                               max_length)
    from transformers import AutoConfig

    vision = AutoConfig.from_pretrained(source.vision_tower)
    vision = getattr(vision, "vision_config", vision)
    return ProcessorConfig(source.language_model, vision.image_size, (vision.image_size // vision.patch_size) ** 2,
                           max_length)


def build(source: ModelSource, seed: int):
    """Build the model on a worker (imports torch/transformers only here)."""
    from vlmtune_model import build_from_parts, build_tiny, load_export

    if source.kind == "tiny":
        return build_tiny(seed=seed, image_size=TINY_IMAGE_SIZE)
    if source.kind == "export":
        return load_export(local_copy(source.uri))
    return build_from_parts(source.language_model, source.vision_tower, source.projector)


def _read_config(folder: str) -> dict:
    path = Path(folder) / "config.json"
    if path.exists():
        return json.loads(path.read_text())
    from transformers import AutoConfig  # a hub id

    return AutoConfig.from_pretrained(folder).to_dict()
