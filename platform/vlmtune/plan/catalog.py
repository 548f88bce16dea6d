"""Which shape a job's model has, without downloading it.

Well-known hub ids map to shapes held here; a local folder is read from its config.json; anything
else (another hub id, an s3:// URI) is an error that names the field and suggests `--shape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vlmtune.spec import TuningJob
from vlmtune_model.shapes import (
    LANGUAGE_MODELS,
    LLAVA_MODELS,
    SHAPES,
    TEXT_KEYS,
    TINY,
    VISION_KEYS,
    VISION_TOWERS,
    Shape,
    sizes,
)


class PlanError(ValueError):
    """A job the plan cannot size; the message names the field and the way out."""

    def __init__(self, field: str, problem: str, fix: str):
        super().__init__(f"{field}: {problem}\n  fix: {fix}")
        self.field, self.problem, self.fix = field, problem, fix

    def __reduce__(self):
        return type(self), (self.field, self.problem, self.fix)


def resolve_shape(
    job: TuningJob,
    jobs: Mapping[str, TuningJob] | None = None,
    override: str | None = None,
    _seen: tuple[str, ...] = (),
) -> Shape:
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
        return TINY
    if model.from_ is not None:
        upstream = (jobs or {}).get(model.from_.job)
        if upstream is None or upstream.name in _seen:
            raise PlanError(
                "spec.model.from.job",
                f"job {model.from_.job!r} is not in the planned files",
                "plan it in the same file set, or pass --shape",
            )
        return resolve_shape(upstream, jobs, None, _seen + (job.name,))
    if model.pretrained is not None:
        if model.pretrained in LLAVA_MODELS:
            return LLAVA_MODELS[model.pretrained]
        text, vision = _local_configs(model.pretrained, "spec.model.pretrained", ("text_config", "vision_config"))
        return Shape(Path(model.pretrained).name, vision, text)
    text = (
        LANGUAGE_MODELS.get(model.language_model)
        or _local_configs(model.language_model, "spec.model.languageModel", (None,))[0]
    )
    vision = (
        VISION_TOWERS.get(model.vision_tower)
        or _local_configs(model.vision_tower, "spec.model.visionTower", ("vision_config",))[0]
    )
    return Shape(Path(model.language_model).name, vision, text)


def _local_configs(uri: str, field: str, sub_configs: tuple[str | None, ...]) -> list[dict]:
    folder = Path(uri)
    if not (folder / "config.json").is_file():
        known = {
            "spec.model.languageModel": LANGUAGE_MODELS,
            "spec.model.visionTower": VISION_TOWERS,
            "spec.model.pretrained": LLAVA_MODELS,
        }[field]
        raise PlanError(
            field,
            f"cannot tell the shape of {uri!r} without downloading it",
            f"pass --shape ({', '.join(SHAPES)}), point it at a local folder holding config.json, "
            f"or use a known id: {', '.join(known)}",
        )
    # transformers fills the defaults that Hugging Face configs leave out (llava-hf's text_config
    # names only a few keys); from a local folder it reads one file and downloads nothing.
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    found = []
    for sub in sub_configs:
        # A bare CLIPVisionConfig or LlamaConfig folder is its own sub-config.
        part = (config if sub is None else getattr(config, sub, config)).to_dict()
        keys = VISION_KEYS if sub == "vision_config" else TEXT_KEYS
        found.append(sizes(part, keys))
    return found
