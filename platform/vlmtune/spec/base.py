"""Shared pydantic base for every spec model: camelCase keys, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

API_GROUP = "vlmtune.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"


class SpecModel(BaseModel):
    """Base of every spec section.

    Keys are camelCase in YAML and snake_case in Python; unknown keys are errors so that a
    misspelt field never silently falls back to its default.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_doc(self) -> dict:
        """The camelCase document form (what a YAML file or a custom resource holds)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class JobKind:
    """What every job kind answers, whatever its spec: its name and the jobs whose outputs it consumes."""

    @property
    def name(self) -> str:
        return self.metadata.name

    def upstream_jobs(self) -> list[str]:
        """Names of jobs whose outputs this job consumes (`spec.model.from`)."""
        ref = getattr(self.spec.model, "from_", None)
        return [ref.job] if ref else []
