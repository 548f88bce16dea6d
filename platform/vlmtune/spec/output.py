"""`spec.output`: where checkpoints, metrics and the exported model go."""

from __future__ import annotations

from pydantic import field_validator

from vlmtune.spec.base import SpecModel


class OutputSpec(SpecModel):
    """Output location: a local folder or an object-store URI."""

    uri: str
    """Run folder: ./runs/NAME locally, s3://bucket/prefix on clusters."""

    @field_validator("uri")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("uri is empty: give a folder such as ./runs/my-job or s3://bucket/runs/my-job")
        return value.rstrip("/") or value
