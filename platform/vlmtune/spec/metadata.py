"""Kubernetes object metadata, as much of it as a job file may carry."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from vlmtune.spec.base import SpecModel

# RFC 1123 label: what Kubernetes requires of names that become pod, service and label values.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


def check_dns_label(value: str, max_length: int = 63) -> str:
    if len(value) > max_length:
        raise ValueError(f"{value!r} is {len(value)} characters; at most {max_length} are allowed")
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'visionflan-stage1')"
        )
    return value


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

    @property
    def queue(self) -> str | None:
        return self.labels.get(QUEUE_LABEL)
