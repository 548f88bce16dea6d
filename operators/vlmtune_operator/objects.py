"""Pure helpers between live Kubernetes objects and our models: job bodies in, owner references out."""

from __future__ import annotations

import copy
from collections.abc import Mapping

from pydantic import ValidationError

from vlmtune.spec import KINDS, Job, issues_from_validation

# Annotations that tools write on live objects; they are not part of the job and would change its digest.
SYSTEM_ANNOTATION_PREFIXES = ("kopf.zalando.org/", "kubectl.kubernetes.io/", "meta.helm.sh/")


class InvalidJob(ValueError):
    """A live custom resource that the spec models reject (e.g. applied while the CRD was older)."""


def job_from_body(body: Mapping) -> Job:
    """The validated job model of a live custom resource.

    Raises:
        InvalidJob: naming every invalid field.
    """
    kind = body.get("kind")
    if kind not in KINDS:
        raise InvalidJob(f"kind {kind!r} is not a vlmtune job kind ({', '.join(KINDS)})")
    meta = body.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if not key.startswith(SYSTEM_ANNOTATION_PREFIXES)
    }
    document = {
        "apiVersion": body.get("apiVersion"),
        "kind": kind,
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "metadata": {
            key: value
            for key, value in {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "labels": dict(meta.get("labels") or {}),
                "annotations": annotations,
            }.items()
            if value is not None
        },
    }
    try:
        return KINDS[kind].model_validate(document)
    except ValidationError as err:
        issues = issues_from_validation(err, KINDS[kind], f"{kind}/{meta.get('name')}")
        raise InvalidJob("; ".join(str(issue).replace("\n    ", " ") for issue in issues)) from None


def owner_reference(owner: Mapping) -> dict:
    """A controller reference to `owner`: deleting the job deletes its RayJob (and through it the cluster)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_owner(child: Mapping, reference: Mapping) -> dict:
    """`child` with `reference` as its only controller owner reference."""
    result = copy.deepcopy(dict(child))
    refs = [ref for ref in result["metadata"].get("ownerReferences", []) if not ref.get("controller")]
    result["metadata"]["ownerReferences"] = refs + [dict(reference)]
    return result


def status_of(body: Mapping | None) -> dict | None:
    """The status of a live object, or None when the object does not exist."""
    return None if body is None else dict(body.get("status") or {})
