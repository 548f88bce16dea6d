"""`spec.data`: where training samples come from and how tasks are mixed."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from vlmtune.spec.base import SpecModel


class SourceFormat(str, Enum):
    vision_flan = "vision-flan"
    """Vision-Flan release: one JSON list of {id, image, task_name, conversations}, images beside it."""
    llava = "llava"
    """LLaVA conversation JSON (multi-turn; records may have no image)."""
    shards = "shards"
    """Task shards written by `vlmtune data prepare` (`uri` is the folder holding manifest.json)."""


class DemoSource(SpecModel):
    """The generated demo task suite (PIL-drawn tasks + scikit-learn digits), made where the job runs."""

    per_task: int = Field(default=64, ge=1, le=10_000)
    """Training instances per task."""
    heldout_per_task: int = Field(default=16, ge=0, le=10_000)
    """Held-out instances per task (for evaluation)."""
    image_size: int = Field(default=64, ge=16, le=1024)
    """Side of the drawn images in pixels."""
    seed: int = 0
    """Generation seed; the same seed gives byte-identical data."""
    tasks: list[str] | None = None
    """Restrict to these task names (all tasks when omitted)."""


class DataSource(SpecModel):
    """One input: annotations at a URI, or the generated demo suite."""

    uri: str | None = None
    """Annotation file (local path or s3://); images are resolved relative to `images`."""
    images: str | None = None
    """Image folder (defaults to the annotation file's folder)."""
    format: SourceFormat = SourceFormat.vision_flan
    """Layout of the annotation file."""
    demo: DemoSource | None = None
    """Use the generated demo suite instead of a URI."""
    max_per_task: int | None = Field(default=None, ge=1)
    """At most this many instances per task (Vision-Flan uses 10,000)."""

    @model_validator(mode="after")
    def _uri_or_demo(self) -> DataSource:
        if (self.uri is None) == (self.demo is None):
            raise ValueError("give each source exactly one of `uri: PATH` or `demo: {}`")
        if self.demo is not None and self.images is not None:
            raise ValueError("`images` only applies to a `uri` source; remove it from the demo source")
        return self


class Mixture(str, Enum):
    uniform = "uniform"
    """Every task contributes equally (up to its size)."""
    proportional = "proportional"
    """Tasks contribute in proportion to their instance counts."""
    weights = "weights"
    """Tasks contribute in proportion to `weights` (tasks left out get none)."""


class DataSpec(SpecModel):
    """Training data: sources, task mixture and sample budget."""

    sources: list[DataSource] = Field(min_length=1)
    """Inputs, read in order and merged by task."""
    tasks: list[str] | None = None
    """Train only on these tasks (all tasks when omitted)."""
    task_count: int | None = Field(default=None, ge=1)
    """Train on this many tasks, drawn with `seed` (the paper's task-scaling studies)."""
    mixture: Mixture = Mixture.proportional
    """How tasks are weighted when `maxSamples` cuts the union."""
    weights: dict[str, float] | None = None
    """Relative weight per task name, for `mixture: weights`."""
    max_samples: int | None = Field(default=None, ge=1)
    """Total training-sample budget per epoch (all of the data when omitted)."""
    seed: int = 0
    """Seed of sampling and shuffling."""
    max_skipped_fraction: float = Field(default=0.05, ge=0, le=1)
    """Fail the run when more than this fraction of records or samples had to be skipped (bad data)."""

    @model_validator(mode="after")
    def _mixture_settings_agree(self) -> DataSpec:
        if self.tasks is not None and self.task_count is not None:
            raise ValueError("give `tasks` (names) or `taskCount` (a number), not both")
        if self.mixture is Mixture.weights:
            if not self.weights:
                raise ValueError("mixture: weights needs `weights: {task: weight, ...}`")
            if self.max_samples is None:
                raise ValueError("mixture: weights needs `maxSamples`, the budget the weights divide")
            if any(weight < 0 for weight in self.weights.values()) or not any(self.weights.values()):
                raise ValueError("weights must be >= 0 with at least one above 0")
        elif self.weights is not None:
            raise ValueError("`weights` only applies with `mixture: weights`")
        return self
