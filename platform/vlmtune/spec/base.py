"""Shared pydantic base for every spec model: camelCase keys, unknown keys rejected, numbers that are numbers."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel

from vlmtune.spec.errors import FieldIssues, preview

API_GROUP = "vlmtune.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
INT32_MAX = 2**31 - 1
"""Kubernetes stores integer fields of workloads as int32: larger ones fail at the API server, or worse, wrap."""
FILE_INPUT = {"fileInput": True}
"""Validation context of documents read from job files: numbers are checked as the CRD's schema would."""


class SpecModel(BaseModel):
    """Base of every spec section.

    Keys are camelCase in YAML and snake_case in Python; unknown keys are errors so that a
    misspelt field never silently falls back to its default. In documents read from job files
    (context FILE_INPUT) numbers must be written as numbers, as the CRD's schema demands: `true` or `"8"`
    for a number, `.inf`/`.nan`, and integers past int32 are errors rather than values that train at 1.0
    or overflow. (Status documents and models built in code are left to pydantic's usual rules.)
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not (info.context or {}).get("fileInput"):
            return data
        problems = []
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key in data:
                problems.extend(
                    ((key, *sub), message, fix) for sub, message, fix in _number_problems(field.annotation, data[key])
                )
        if problems:
            raise FieldIssues(problems)
        return data

    def to_doc(self) -> dict:
        """The camelCase document form (what a YAML file or a custom resource holds)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _number_problems(annotation: Any, value: Any) -> list[tuple[tuple, str, str]]:
    """Problems with a value given for a numeric field (also inside list and mapping fields)."""
    kind = _numeric(annotation)
    if kind is not None:
        return _scalar_problem(kind, value)
    origin, args = typing.get_origin(_unwrap(annotation)), typing.get_args(_unwrap(annotation))
    if origin is list and args and isinstance(value, list):
        return [
            ((index, *sub), message, fix)
            for index, item in enumerate(value)
            for sub, message, fix in _number_problems(args[0], item)
        ]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return [
            ((str(key), *sub), message, fix)
            for key, item in value.items()
            for sub, message, fix in _number_problems(args[1], item)
        ]
    return []


def _scalar_problem(kind: type, value: Any) -> list[tuple[tuple, str, str]]:
    noun = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        return [((), f"expected {noun}, got the boolean {str(value).lower()}", f"write {noun}, e.g. 1 or 0")]
    if isinstance(value, str):
        return [((), f"expected {noun}, got text {preview(value)}", f"write {noun} without quotes")]
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind is int and whole and not -INT32_MAX - 1 <= value <= INT32_MAX:
        return [
            (
                (),
                f"{preview(value)} is outside the int32 range Kubernetes stores",
                f"use a value between {-INT32_MAX - 1} and {INT32_MAX}",
            )
        ]
    if isinstance(value, float) and not math.isfinite(value):
        return [((), f"{value} is not a finite number", f"write {noun} such as {1 if kind is int else 1.0}")]
    return []


def _numeric(annotation: Any) -> type | None:
    """int or float when the field holds one number (optionally None), else None."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if annotation in (int, float) else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X; `Annotated[X, ...]` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            annotation = options[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


class JobKind:
    """What every job kind answers, whatever its spec: its name and the jobs whose outputs it consumes."""

    @property
    def name(self) -> str:
        return self.metadata.name

    def upstream_jobs(self) -> list[str]:
        """Names of jobs whose outputs this job consumes (`spec.model.from`)."""
        ref = getattr(self.spec.model, "from_", None)
        return [ref.job] if ref else []
