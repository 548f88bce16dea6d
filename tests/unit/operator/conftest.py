"""Fixtures of the operator tests."""

from __future__ import annotations

import pytest
from operator_docs import GPU_RUNTIME

from vlmtune_operator.runtime import RuntimeConfig, parse_runtime


@pytest.fixture
def gpu_runtime() -> RuntimeConfig:
    return parse_runtime(GPU_RUNTIME)
