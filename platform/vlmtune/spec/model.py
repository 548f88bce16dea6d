"""`spec.model`: which model to tune and which parts of it train."""

from __future__ import annotations

import re
from enum import Enum

from pydantic import Field, field_validator, model_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.errors import FieldIssues
from vlmtune.spec.metadata import check_dns_label

# LLaVA-1.5's LoRA recipe adapts every linear layer of the language model.
LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Preset(str, Enum):
    tiny = "tiny"
    """A few-million-parameter LLaVA (tiny CLIP + tiny Llama, random init) for tests and laptops."""


class Projector(str, Enum):
    mlp2x_gelu = "mlp2x_gelu"
    """Two linear layers with a GELU between them (LLaVA-1.5)."""
    linear = "linear"
    """One linear layer (LLaVA-1.0)."""


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


class LoraSpec(SpecModel):
    """Low-rank adapters on the language model: its base weights stay frozen, only the adapters train."""

    rank: int = Field(default=128, ge=1)
    """Adapter rank r (LLaVA-1.5's LoRA recipe: 128)."""
    alpha: float = Field(default=256, gt=0)
    """Scaling numerator: adapter updates are multiplied by alpha / rank (LLaVA-1.5: 256)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_LINEAR_MODULES), min_length=1)
    """Names of the language model's linear layers that get adapters (vision tower and projector never do)."""

    @field_validator("target_modules")
    @classmethod
    def _plain_module_names(cls, names: list[str]) -> list[str]:
        bad = [name for name in names if not _MODULE_NAME.match(name)]
        if bad:
            raise ValueError(f"{bad} are not module names; write the last part of a layer's name, e.g. q_proj")
        if len(set(names)) != len(names):
            raise ValueError("targetModules lists a module twice")
        return names


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
    """Vision-to-language projector; with `from`/`pretrained` it must match the model's own."""
    projector_weights: str | None = None
    """Initial projector weights: a LLaVA-1.5 `mm_projector.bin` (or .safetensors), local path or s3:// URI."""
    trainable: list[TrainablePart] = Field(
        default_factory=lambda: [TrainablePart.projector, TrainablePart.language_model]
    )
    """Parts that receive gradients; the rest stay frozen (the vision tower by default)."""
    lora: LoraSpec | None = None
    """Train low-rank adapters instead of the language model's weights (needs language_model in trainable)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        pretrained = self.language_model is not None or self.vision_tower is not None
        chosen = [
            name
            for name, present in (
                ("preset", self.preset),
                ("from", self.from_),
                ("pretrained", self.pretrained),
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
        problems = _combination_problems(self)
        if problems:
            raise FieldIssues(problems)
        return self


def _combination_problems(spec: ModelSpec) -> list[tuple[tuple[str, ...], str, str | None]]:
    problems = []
    if spec.projector_weights is not None and (spec.from_ is not None or spec.pretrained is not None):
        problems.append(
            (
                ("projectorWeights",),
                "initialises a new projector, but a `from`/`pretrained` model already has a trained one",
                "remove projectorWeights, or build from `languageModel` + `visionTower`",
            )
        )
    if spec.lora is not None and TrainablePart.language_model not in spec.trainable:
        problems.append(
            (
                ("lora",),
                "adapts the language model, but language_model is not in trainable",
                "add language_model to trainable, or remove lora",
            )
        )
    return problems
