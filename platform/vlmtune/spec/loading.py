"""Load job files: multi-document YAML -> validated job models, or every problem at once.

Whatever the input (not UTF-8, malformed, deeply nested, an alias bomb, a 10 MB value, the wrong types),
the result is a list of one-line issues naming the file and line or the field path, never a traceback.
`--set` overrides are checked once, and a problem they cause is reported against the override.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmtune.spec.base import API_VERSION, FILE_INPUT
from vlmtune.spec.errors import SpecError, SpecIssue, preview
from vlmtune.spec.eval import EvalJob
from vlmtune.spec.experiment import Experiment
from vlmtune.spec.issues import issues_from_validation
from vlmtune.spec.references import reference_issues
from vlmtune.spec.tuning import TuningJob
from vlmtune.spec.yaml_reader import YamlProblem, line_of, load_documents

Job = TuningJob | EvalJob | Experiment
KINDS: dict[str, type[Job]] = {"TuningJob": TuningJob, "EvalJob": EvalJob, "Experiment": Experiment}

__all__ = [
    "KINDS",
    "Job",
    "Override",
    "apply_overrides",
    "load_jobs",
    "parse_documents",
    "parse_overrides",
    "reference_issues",
]


@dataclass(frozen=True)
class Override:
    """One `--set dotted.path=value`, parsed."""

    text: str
    keys: tuple[str, ...]
    value: Any

    @property
    def path(self) -> str:
        return ".".join(self.keys)

    @property
    def source(self) -> str:
        return f"--set {preview(self.text, 80)[1:-1] if len(self.text) > 80 else self.text}"


def load_jobs(paths: Sequence[str | Path], overrides: Sequence[str] = (), known: Iterable[str] = ()) -> list[Job]:
    """Load and validate every job in `paths`, checking references between them.

    Args:
        paths: YAML files; each may hold several documents.
        overrides: `dotted.path=value` settings applied to every document before validation.
        known: names of jobs defined elsewhere (already run, or rendered with their artifacts given).

    Returns:
        The jobs, in file order.

    Raises:
        SpecError: with one issue per problem found, across all files.
    """
    parsed, issues = parse_overrides(overrides)
    jobs = []
    if not issues:
        for path in paths:
            loaded, found = _load_file(Path(path), parsed)
            jobs.extend(loaded)
            issues.extend(found)
        issues.extend(reference_issues(jobs, known))
    if issues:
        raise SpecError(_unique(issues))
    return [job for job, _ in jobs]


def parse_documents(text: str, source: str, overrides: Sequence[str] = ()) -> list[Job]:
    """Validate job documents held in a string (the entrypoint of cluster runs uses this)."""
    parsed, issues = parse_overrides(overrides)
    jobs = []
    if not issues:
        jobs, issues = _parse(text, source, parsed)
        issues.extend(reference_issues(jobs))
    if issues:
        raise SpecError(_unique(issues))
    return [job for job, _ in jobs]


def parse_overrides(overrides: Sequence[str]) -> tuple[list[Override], list[SpecIssue]]:
    """`dotted.path=value` strings (values read as YAML, as in a file) -> overrides, and one issue per bad one."""
    parsed, issues = [], []
    for text in overrides:
        path, sep, raw = text.partition("=")
        keys = tuple(path.split("."))
        source = Override(text, keys, None).source
        if not sep or not path or not all(keys):
            issues.append(
                SpecIssue(
                    source,
                    "",
                    "not of the form dotted.path=value",
                    "write overrides as e.g. --set spec.training.maxSteps=10",
                )
            )
            continue
        try:
            documents = load_documents(raw)
        except YamlProblem as problem:
            issues.append(SpecIssue(source, path, f"the value is {problem.message}", problem.fix))
            continue
        if len(documents) > 1:
            issues.append(SpecIssue(source, path, "the value holds several YAML documents", "give one value"))
            continue
        parsed.append(Override(text, keys, documents[0] if documents else None))
    return parsed, issues


def apply_overrides(document: dict, overrides: Sequence[str | Override]) -> dict:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a copy of `document`.

    Raises:
        ValueError: an override is malformed or runs through a field that is not a mapping.
    """
    if not overrides:
        return document
    parsed = [item for item in overrides if isinstance(item, Override)]
    texts = [item for item in overrides if not isinstance(item, Override)]
    more, issues = parse_overrides(texts)
    if issues:
        raise ValueError(str(issues[0]))
    result = copy.deepcopy(document)
    for override in [*parsed, *more]:
        _apply(result, override)
    return result


def _apply(document: dict, override: Override) -> None:
    node = document
    *parents, leaf = override.keys
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"{key!r} is not a mapping, so it has no field {leaf!r}")
    node[leaf] = copy.deepcopy(override.value)


def _load_file(path: Path, overrides: Sequence[Override]) -> tuple[list[tuple[Job, str]], list[SpecIssue]]:
    try:
        data = path.read_bytes()
    except OSError as err:
        return [], [SpecIssue(str(path), "", f"cannot read file: {err.strerror or err}", "check the path")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return [], [
            SpecIssue(
                str(path),
                "",
                f"not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start}",
                "save the file as UTF-8",
                line,
            )
        ]
    return _parse(text, str(path), overrides)


def _parse(text: str, source: str, overrides: Sequence[Override]) -> tuple[list[tuple[Job, str]], list[SpecIssue]]:
    try:
        documents = load_documents(text)
    except YamlProblem as problem:
        return [], [SpecIssue(source, "", problem.message, problem.fix, problem.line)]
    if not documents:
        return [], [SpecIssue(source, "", "the file holds no job", f"add a document with apiVersion: {API_VERSION}")]
    jobs, issues = [], []
    for index, document in enumerate(documents):
        doc_source = source if len(documents) == 1 else f"{source} (document {index + 1})"
        job, found = _validate_document(document, doc_source, overrides)
        issues.extend(_located(issue, text, index) for issue in found)
        if job is not None:
            jobs.append((job, doc_source))
    return jobs, issues


def _validate_document(document: Any, source: str, overrides: Sequence[Override]) -> tuple[Job | None, list[SpecIssue]]:
    if not isinstance(document, dict):
        return None, [
            SpecIssue(
                source,
                "",
                f"expected a mapping (a Kubernetes object), got {preview(document)}",
                "start the document with `apiVersion:` and `kind:` lines",
            )
        ]
    blame = [(override, _first_new_path(document, override.keys)) for override in overrides]
    document = copy.deepcopy(document) if overrides else document
    for override in overrides:
        try:
            _apply(document, override)
        except ValueError as err:
            return None, [SpecIssue(override.source, override.path, str(err), "override a field inside a mapping")]
    header = _header_issues(document, source)
    if header:
        return None, [_blamed(issue, blame) for issue in header]
    model = KINDS[document["kind"]]
    try:
        # Files speak camelCase only, as the CRD does: a snake_case key is an unknown key.
        return model.model_validate(document, by_alias=True, by_name=False, context=FILE_INPUT), []
    except ValidationError as err:
        return None, [_blamed(issue, blame) for issue in issues_from_validation(err, model, source)]


def _first_new_path(document: dict, keys: tuple[str, ...]) -> str:
    """The dotted path of the first key of `keys` the document lacks (an override creates it), or all of them."""
    node: Any = document
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            return ".".join(keys[: depth + 1])
        node = node[key]
    return ".".join(keys)


def _blamed(issue: SpecIssue, blame: Sequence[tuple[Override, str]]) -> SpecIssue:
    """The issue reported against the `--set` that caused it: a problem at the overridden field, inside it,
    or at a mapping the override created on its way (a typo in the path)."""
    for override, created in blame:
        if any(
            issue.path == path or issue.path.startswith((path + ".", path + "[")) for path in (override.path, created)
        ):
            return replace(issue, source=override.source)
    return issue


def _header_issues(document: dict, source: str) -> list[SpecIssue]:
    issues = []
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version != API_VERSION:
        got = "missing" if api_version is None else f"{preview(api_version)} is not supported"
        issues.append(SpecIssue(source, "apiVersion", got, f"use apiVersion: {API_VERSION}"))
    if not (isinstance(kind, str) and kind in KINDS):
        got = "missing" if kind is None else f"unknown kind {preview(kind)}"
        issues.append(SpecIssue(source, "kind", got, f"use one of: {', '.join(KINDS)}"))
    return issues


def _located(issue: SpecIssue, text: str, document: int) -> SpecIssue:
    """The issue with the line of its field in the file (issues about a `--set` have none)."""
    if issue.source.startswith("--set ") or not issue.path or issue.line is not None:
        return issue
    return replace(issue, line=line_of(text, document, issue.path))


def _unique(issues: list[SpecIssue]) -> list[SpecIssue]:
    """Issues without repeats (an override's problem shows up once, not once per document)."""
    seen, result = set(), []
    for issue in issues:
        key = (issue.source, issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            result.append(issue)
    return result
