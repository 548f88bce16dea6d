"""`spec.model`: which model to tune and which parts of it train."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator, model_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.metadata import check_dns_label


class Preset(str, Enum):
    tiny = "tiny"
    """A few-million-parameter LLaVA (tiny CLIP + tiny Llama, random init) for tests and laptops."""


class Projector(str, Enum):
    mlp2x_gelu = "mlp2x_gelu"
    """Two linear layers with a GELU between them (LLaVA-1.5)."""


class TrainablePart(str, Enum):
    vision_tower = "vision_tower"
    projector = "projector"
    language_model = "language_model"


class CheckpointRef(str, Enum):
    last = "last"


class JobRef(SpecModel):
    """A reference to another job's output model; the runner resolves it, nobody types a path."""

    job: str
    """Name of the upstream job (in the same file, or already run into the same runs folder)."""
    checkpoint: CheckpointRef = CheckpointRef.last
    """Which of the upstream job's models to take."""

    @field_validator("job")
    @classmethod
    def _job_is_a_name(cls, value: str) -> str:
        return check_dns_label(value)


class ModelSpec(SpecModel):
    """The model: a preset, an upstream job's output, a complete LLaVA model, or pretrained parts."""

    preset: Preset | None = None
    """Built-in model; `tiny` needs no download."""
    from_: JobRef | None = Field(default=None, alias="from")
    """Start from another job's exported model (stage 2 after stage 1)."""
    pretrained: str | None = None
    """A complete LLaVA model in Hugging Face format: hub id, s3:// URI or local path."""
    language_model: str | None = None
    """Language model: hub id, s3:// URI or local path (e.g. lmsys/vicuna-13b-v1.5)."""
    vision_tower: str | None = None
    """Vision tower: hub id, s3:// URI or local path (e.g. openai/clip-vit-large-patch14-336)."""
    projector: Projector = Projector.mlp2x_gelu
    """Vision-to-language projector."""
    trainable: list[TrainablePart] = Field(
        default_factory=lambda: [TrainablePart.projector, TrainablePart.language_model]
    )
    """Parts that receive gradients; the rest stay frozen (the vision tower by default)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        pretrained = self.language_model is not None or self.vision_tower is not None
        chosen = [
            name
            for name, present in (
                ("preset", self.preset), ("from", self.from_), ("pretrained", self.pretrained),
                ("languageModel", pretrained),
            )
            if present
        ]
        if len(chosen) != 1:
            raise ValueError(
                "name the model exactly one way: `preset: tiny`, `from: {job: NAME}`, `pretrained: URI`, or "
                f"`languageModel` + `visionTower` (found: {', '.join(chosen) or 'none'})"
            )
        if pretrained and (self.language_model is None or self.vision_tower is None):
            missing = "visionTower" if self.vision_tower is None else "languageModel"
            raise ValueError(f"a pretrained model needs both languageModel and visionTower; add `{missing}`")
        if not self.trainable:
            raise ValueError("trainable is empty: list at least one of vision_tower, projector, language_model")
        if len(set(self.trainable)) != len(self.trainable):
            raise ValueError("trainable lists a part twice")
        return self
