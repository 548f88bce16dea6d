"""Turn pydantic validation errors into `SpecIssue`s that name the field path and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from vlmtune.spec.errors import FieldIssues, SpecIssue, preview


def issues_from_validation(error: ValidationError, model: type[BaseModel], source: str) -> list[SpecIssue]:
    issues = []
    for item in error.errors():
        loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldIssues):
            issues.extend(SpecIssue(source, _dotted(loc + sub), message, fix) for sub, message, fix in cause.problems)
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
        return f"{preview(given)} is not allowed", msg.replace("Input should be", "use")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {_got(given)}", "write this as `key: value` lines" + _allowed_hint(
            model, loc
        )
    return f"{msg[0].lower()}{msg[1:]} (got {_got(given)})", _generic_fix(kind, item.get("ctx") or {})


_FIXES = {
    "greater_than_equal": "use a value of at least {ge}",
    "greater_than": "use a value above {gt}",
    "less_than_equal": "use a value of at most {le}",
    "less_than": "use a value below {lt}",
    "too_short": "give at least {min_length} item(s)",
    "too_long": "give at most {max_length} item(s)",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "string_type": "write text (quote it if YAML reads it as a number, boolean or date)",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "list_type": "write a list, e.g. [a, b]",
}


def _generic_fix(kind: str, ctx: dict) -> str:
    try:
        return _FIXES[kind].format(**ctx)
    except (KeyError, IndexError):
        return "check the field's type and allowed values (`vlmtune crds` prints the schema)"


def _unknown_key(model: type[BaseModel], loc: tuple) -> tuple[str, str | None]:
    known = _known_keys(model, loc[:-1])
    key = str(loc[-1])
    if known is None:
        return f"unknown key {preview(key)}", "remove it"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    if close:
        return f"unknown key {preview(key)}", f"did you mean `{close[0]}`?"
    return f"unknown key {preview(key)}", f"remove it; allowed keys here: {', '.join(sorted(known))}"


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
        key = str(part) if len(str(part)) <= _KEY_CHARS else str(part)[:_KEY_CHARS] + "..."
        text += f"[{part}]" if isinstance(part, int) else (f".{key}" if text else key)
    return text


_KEY_CHARS = 60  # a path names keys in full, unless a key is absurdly long


def _got(value: Any) -> str:
    return preview(value) if isinstance(value, (dict, list, tuple)) else f"{_type_name(value)} {preview(value)}"


def _type_name(value: Any) -> str:
    return {str: "text", int: "integer", float: "number", bool: "boolean", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )
