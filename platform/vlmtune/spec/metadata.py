"""Kubernetes object metadata, as much of it as a job file may carry."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.errors import FieldIssues, preview

# RFC 1123 label: what Kubernetes requires of names that become pod, service and label values.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ANNOTATIONS_MAX_BYTES = 256 * 1024  # the API server's limit on all annotations of an object together
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


def check_dns_label(value: str, max_length: int = 63) -> str:
    if len(value) > max_length:
        raise ValueError(f"{preview(value)} is {len(value)} characters; at most {max_length} are allowed")
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{preview(value)} is not a valid name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'visionflan-stage1')"
        )
    return value


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid label or annotation key (`[prefix/]name`), or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"key prefix {preview(prefix)} is not a DNS subdomain (lowercase letters, digits, '-', '.'; <= 253)"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"key name {preview(name)} must be 1-63 characters of letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (
            f"value {preview(value)} must be at most 63 characters of letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit (or empty)"
        )
    return None


class ObjectMeta(SpecModel):
    """Subset of Kubernetes ObjectMeta that job files use."""

    name: str
    """Job name; other jobs refer to it with `from: {job: NAME}`."""
    namespace: str | None = None
    """Kubernetes namespace (the tenant's); ignored by local runs."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels; `kueue.x-k8s.io/queue-name` picks the tenant's Kueue LocalQueue."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Free-form annotations."""

    @field_validator("name")
    @classmethod
    def _name_is_dns_label(cls, value: str) -> str:
        return check_dns_label(value)

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns_label(cls, value: str | None) -> str | None:
        return None if value is None else check_dns_label(value)

    @field_validator("labels")
    @classmethod
    def _labels_as_kubernetes_takes_them(cls, labels: dict[str, str]) -> dict[str, str]:
        problems = [
            ((key,), problem, "see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/")
            for key, value in labels.items()
            for problem in (key_problem(key), label_value_problem(value))
            if problem
        ]
        if problems:
            raise FieldIssues(problems)
        return labels

    @field_validator("annotations")
    @classmethod
    def _annotations_as_kubernetes_takes_them(cls, annotations: dict[str, str]) -> dict[str, str]:
        problems = [
            ((key,), problem, "use a key of the form [prefix/]name")
            for key in annotations
            if (problem := key_problem(key))
        ]
        size = sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())
        if size > ANNOTATIONS_MAX_BYTES:
            problems.append(
                (
                    (),
                    f"{size} bytes of annotations; the API server takes at most {ANNOTATIONS_MAX_BYTES}",
                    "keep large data out of annotations",
                )
            )
        if problems:
            raise FieldIssues(problems)
        return annotations

    @property
    def queue(self) -> str | None:
        return self.labels.get(QUEUE_LABEL)
