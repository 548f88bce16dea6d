"""Load job files: multi-document YAML -> validated job models, or every problem at once."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError

from vlmtune.spec.base import API_VERSION
from vlmtune.spec.errors import SpecError, SpecIssue
from vlmtune.spec.eval import EvalJob
from vlmtune.spec.experiment import Experiment
from vlmtune.spec.issues import issues_from_validation
from vlmtune.spec.tuning import TuningJob

Job = Union[TuningJob, EvalJob, Experiment]
KINDS: dict[str, type[Job]] = {"TuningJob": TuningJob, "EvalJob": EvalJob, "Experiment": Experiment}


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
    jobs, issues = [], []
    for path in paths:
        loaded, found = _load_file(Path(path), overrides)
        jobs.extend(loaded)
        issues.extend(found)
    issues.extend(reference_issues(jobs, known))
    if issues:
        raise SpecError(issues)
    return [job for job, _ in jobs]


def parse_documents(text: str, source: str, overrides: Sequence[str] = ()) -> list[Job]:
    """Validate job documents held in a string (the entrypoint of cluster runs uses this)."""
    jobs, issues = _parse(text, source, overrides)
    issues.extend(reference_issues(jobs))
    if issues:
        raise SpecError(issues)
    return [job for job, _ in jobs]


def reference_issues(jobs: Iterable[tuple[Job, str]], known: Iterable[str] = ()) -> list[SpecIssue]:
    """Duplicate names and `from: {job: X}` references that name no job in the set."""
    issues, seen = [], set()
    jobs = list(jobs)
    for job, source in jobs:
        if job.name in seen:
            issues.append(SpecIssue(source, "metadata.name", f"job name {job.name!r} is used twice",
                                    "give every job in a file set its own name"))
        seen.add(job.name)
    names = seen | set(known)
    for job, source in jobs:
        for upstream in job.upstream_jobs():
            if upstream == job.name:
                issues.append(SpecIssue(source, "spec.model.from.job", "a job cannot start from itself", None))
            elif upstream not in names:
                issues.append(SpecIssue(
                    source, "spec.model.from.job", f"no job named {upstream!r} is defined",
                    f"define it in the same file set; known jobs: {', '.join(sorted(names)) or 'none'}",
                ))
    return issues


def _load_file(path: Path, overrides: Sequence[str]) -> tuple[list[tuple[Job, str]], list[SpecIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        return [], [SpecIssue(str(path), "", f"cannot read file: {err.strerror or err}", "check the path")]
    return _parse(text, str(path), overrides)


def _parse(text: str, source: str, overrides: Sequence[str]) -> tuple[list[tuple[Job, str]], list[SpecIssue]]:
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return [], [SpecIssue(source, "", f"not valid YAML{where}: {getattr(err, 'problem', err)}",
                              "fix the YAML syntax (indentation, colons, quotes)")]
    if not documents:
        return [], [SpecIssue(source, "", "the file holds no job", f"add a document with apiVersion: {API_VERSION}")]
    jobs, issues = [], []
    for index, document in enumerate(documents):
        doc_source = source if len(documents) == 1 else f"{source} (document {index + 1})"
        job, found = _validate_document(document, doc_source, overrides)
        issues.extend(found)
        if job is not None:
            jobs.append((job, doc_source))
    return jobs, issues


def _validate_document(document: Any, source: str, overrides: Sequence[str]) -> tuple[Job | None, list[SpecIssue]]:
    if not isinstance(document, dict):
        return None, [SpecIssue(source, "", f"expected a mapping (a Kubernetes object), got {type(document).__name__}",
                                "start the document with `apiVersion:` and `kind:` lines")]
    try:
        document = apply_overrides(document, overrides)
    except ValueError as err:
        return None, [SpecIssue("--set", "", str(err), "write overrides as dotted.path=value")]
    header = _header_issues(document, source)
    if header:
        return None, header
    model = KINDS[document["kind"]]
    try:
        # Files speak camelCase only, as the CRD does: a snake_case key is an unknown key.
        return model.model_validate(document, by_alias=True, by_name=False), []
    except ValidationError as err:
        return None, issues_from_validation(err, model, source)


def _header_issues(document: dict, source: str) -> list[SpecIssue]:
    issues = []
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version != API_VERSION:
        got = "missing" if api_version is None else f"{api_version!r} is not supported"
        issues.append(SpecIssue(source, "apiVersion", got, f"use apiVersion: {API_VERSION}"))
    if kind not in KINDS:
        got = "missing" if kind is None else f"unknown kind {kind!r}"
        issues.append(SpecIssue(source, "kind", got, f"use one of: {', '.join(KINDS)}"))
    return issues


def apply_overrides(document: dict, overrides: Sequence[str]) -> dict:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a copy of `document`."""
    if not overrides:
        return document
    result = copy.deepcopy(document)
    for override in overrides:
        path, sep, raw = override.partition("=")
        if not sep or not path:
            raise ValueError(f"override {override!r} has no '='")
        node = result
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {override!r}: {key!r} is not a mapping")
        node[leaf] = yaml.safe_load(raw)
    return result
