"""Turn pydantic validation errors into `SpecIssue`s that name the field path and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from vlmtune.spec.errors import FieldIssues, SpecIssue


def issues_from_validation(error: ValidationError, model: type[BaseModel], source: str) -> list[SpecIssue]:
    issues = []
    for item in error.errors():
        loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldIssues):
            issues.extend(
                SpecIssue(source, _dotted(loc + sub), message, fix) for sub, message, fix in cause.problems
            )
            continue
        issues.append(SpecIssue(source, _dotted(loc), *_describe(item, model, loc)))
    return issues


def _describe(item: dict, model: type[BaseModel], loc: tuple) -> tuple[str, str | None]:
    kind, msg, given = item["type"], item["msg"], item.get("input")
    if kind == "missing":
        return "required field is missing", f"add `{loc[-1]}`" + _allowed_hint(model, loc[:-1], exclude_set=True)
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, "), None
    if kind in ("literal_error", "enum"):
        return f"{given!r} is not allowed", msg.replace("Input should be", "use")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {_type_name(given)} {given!r}", \
            "write this as `key: value` lines" + _allowed_hint(model, loc)
    return f"{msg[0].lower()}{msg[1:]} (got {_type_name(given)} {given!r})", None


def _unknown_key(model: type[BaseModel], loc: tuple) -> tuple[str, str | None]:
    known = _known_keys(model, loc[:-1])
    key = str(loc[-1])
    if known is None:
        return f"unknown key {key!r}", "remove it"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    if close:
        return f"unknown key {key!r}", f"did you mean `{close[0]}`?"
    return f"unknown key {key!r}", f"remove it; allowed keys here: {', '.join(sorted(known))}"


def _allowed_hint(model: type[BaseModel], loc: tuple, exclude_set: bool = False) -> str:
    known = _known_keys(model, loc)
    if not known or exclude_set:
        return ""
    return f" (allowed keys: {', '.join(sorted(known))})"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The camelCase keys accepted at `loc`, or None when `loc` is not a model."""
    target = _model_at(model, loc)
    if target is None:
        return None
    return [field.alias or name for name, field in target.model_fields.items()]


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip `X | None` down to X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _type_name(value: Any) -> str:
    return {str: "text", int: "integer", float: "number", bool: "boolean", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )
