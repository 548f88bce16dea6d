"""Which shape a job's model has, without downloading it.

Well-known hub ids map to shapes held here; a local folder is read from its config.json; anything
else (another hub id, an s3:// URI) is an error that names the field and suggests `--shape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vlmtune.bench.shapes import LLAVA_7B, LLAVA_13B, SHAPES, TINY, Shape
from vlmtune.spec import TuningJob

LLAMA_7B = {**LLAVA_7B.text, "vocab_size": 32000}  # llava-hf adds 64 padding rows to the vocabulary
LLAMA_13B = LLAVA_13B.text
CLIP_L14_336 = LLAVA_7B.vision
# As vlmtune_model builds it: tied embeddings over the tiny tokenizer's 30,522 tokens + <image>.
TINY_PRESET = Shape("tiny", TINY.vision, {**TINY.text, "vocab_size": 30_523, "tie_word_embeddings": True})

LANGUAGE_MODELS: Mapping[str, dict] = {
    "lmsys/vicuna-7b-v1.5": LLAMA_7B,
    "lmsys/vicuna-13b-v1.5": LLAMA_13B,
    "meta-llama/Llama-2-7b-hf": LLAMA_7B,
    "meta-llama/Llama-2-7b-chat-hf": LLAMA_7B,
    "meta-llama/Llama-2-13b-hf": LLAMA_13B,
    "meta-llama/Llama-2-13b-chat-hf": LLAMA_13B,
}
VISION_TOWERS: Mapping[str, dict] = {
    "openai/clip-vit-large-patch14-336": CLIP_L14_336,
    "openai/clip-vit-large-patch14": {**CLIP_L14_336, "image_size": 224},
}
LLAVA_MODELS: Mapping[str, Shape] = {
    "llava-hf/llava-1.5-7b-hf": LLAVA_7B,
    "llava-hf/llava-1.5-13b-hf": Shape("llava-13b", CLIP_L14_336, {**LLAMA_13B, "vocab_size": 32064}),
    "liuhaotian/llava-v1.5-7b": Shape("llava-7b", CLIP_L14_336, LLAMA_7B),
    "liuhaotian/llava-v1.5-13b": LLAVA_13B,
}
TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "head_dim", "tie_word_embeddings")
VISION_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
               "patch_size")


class PlanError(ValueError):
    """A job the plan cannot size; the message names the field and the way out."""

    def __init__(self, field: str, problem: str, fix: str):
        super().__init__(f"{field}: {problem}\n  fix: {fix}")
        self.field, self.problem, self.fix = field, problem, fix

    def __reduce__(self):
        return type(self), (self.field, self.problem, self.fix)


def resolve_shape(job: TuningJob, jobs: Mapping[str, TuningJob] | None = None, override: str | None = None,
                  _seen: tuple[str, ...] = ()) -> Shape:
    """The shape of `job`'s model: `override` (a name in SHAPES) wins, then the spec.

    Raises:
        PlanError: the model cannot be sized without a download.
    """
    if override is not None:
        if override not in SHAPES:
            raise PlanError("--shape", f"unknown shape {override!r}", f"use one of: {', '.join(SHAPES)}")
        return SHAPES[override]
    model = job.spec.model
    if model.preset is not None:
        return TINY_PRESET
    if model.from_ is not None:
        upstream = (jobs or {}).get(model.from_.job)
        if upstream is None or upstream.name in _seen:
            raise PlanError("spec.model.from.job", f"job {model.from_.job!r} is not in the planned files",
                            "plan it in the same file set, or pass --shape")
        return resolve_shape(upstream, jobs, None, _seen + (job.name,))
    if model.pretrained is not None:
        if model.pretrained in LLAVA_MODELS:
            return LLAVA_MODELS[model.pretrained]
        text, vision = _local_configs(model.pretrained, "spec.model.pretrained", ("text_config", "vision_config"))
        return Shape(Path(model.pretrained).name, vision, text)
    text = LANGUAGE_MODELS.get(model.language_model) or _local_configs(
        model.language_model, "spec.model.languageModel", (None,))[0]
    vision = VISION_TOWERS.get(model.vision_tower) or _local_configs(
        model.vision_tower, "spec.model.visionTower", ("vision_config",))[0]
    return Shape(Path(model.language_model).name, vision, text)


def shape_config(config: dict, keys: tuple[str, ...]) -> dict:
    """The entries of a Hugging Face config dict that size a model (missing optional ones dropped)."""
    return {key: config[key] for key in keys if config.get(key) is not None}


def shape_of_config(config) -> Shape:
    """The shape of a built model from its transformers `LlavaConfig` (what the train loop holds)."""
    return Shape(getattr(config, "name_or_path", "") or "model",
                 shape_config(config.vision_config.to_dict(), VISION_KEYS),
                 shape_config(config.text_config.to_dict(), TEXT_KEYS))


def _local_configs(uri: str, field: str, sub_configs: tuple[str | None, ...]) -> list[dict]:
    folder = Path(uri)
    if not (folder / "config.json").is_file():
        known = {"spec.model.languageModel": LANGUAGE_MODELS, "spec.model.visionTower": VISION_TOWERS,
                 "spec.model.pretrained": LLAVA_MODELS}[field]
        raise PlanError(field, f"cannot tell the shape of {uri!r} without downloading it",
                        f"pass --shape ({', '.join(SHAPES)}), point it at a local folder holding config.json, "
                        f"or use a known id: {', '.join(known)}")
    # transformers fills the defaults that Hugging Face configs leave out (llava-hf's text_config
    # names only a few keys); from a local folder it reads one file and downloads nothing.
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    found = []
    for sub in sub_configs:
        # A bare CLIPVisionConfig or LlamaConfig folder is its own sub-config.
        part = (config if sub is None else getattr(config, sub, config)).to_dict()
        keys = VISION_KEYS if sub == "vision_config" else TEXT_KEYS
        found.append(shape_config(part, keys))
    return found
