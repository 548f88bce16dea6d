"""The one issue a bad job file raises at a field path: shared by the spec tests."""

from __future__ import annotations

import pytest

from vlmtune.spec import SpecError


def raised_issue(path: str, load, *args, **kwargs):
    """The issue at `path` that `load(*args, **kwargs)` raises (fails listing every issue when there is none)."""
    with pytest.raises(SpecError) as caught:
        load(*args, **kwargs)
    matching = [issue for issue in caught.value.issues if issue.path == path]
    assert matching, f"no issue at {path}: {[str(issue) for issue in caught.value.issues]}"
    return matching[0]
