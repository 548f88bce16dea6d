"""The runtime config loads from plain YAML or the chart's ConfigMap, and rejects typos with the field path."""

from __future__ import annotations

import pytest
import yaml
from operator_docs import GPU_RUNTIME

from vlmtune_operator.runtime import RuntimeConfig, load_runtime, parse_runtime


def test_plain_and_configmap_forms_agree(tmp_path):
    plain = tmp_path / "runtime.yaml"
    plain.write_text(yaml.safe_dump(GPU_RUNTIME))
    configmap = tmp_path / "configmap.yaml"
    configmap.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "vlmtune"},
                "data": {"runtime.yaml": yaml.safe_dump(GPU_RUNTIME)},
            }
        )
    )
    assert load_runtime(plain) == load_runtime(configmap) == parse_runtime(GPU_RUNTIME)
    pool = load_runtime(plain).node_pools["a100-80gb"]
    assert pool.gpu_resource == "nvidia.com/gpu" and pool.tolerations[0].operator == "Exists"


def test_defaults_without_a_file():
    runtime = load_runtime(None)
    assert runtime == RuntimeConfig() and runtime.readiness_deadline_seconds == 1800


def test_typos_name_the_field():
    with pytest.raises(ValueError, match=r"cluster.yaml: nodePools.a100.gpuResorce: Extra inputs are not permitted"):
        parse_runtime({"nodePools": {"a100": {"gpuResorce": "nvidia.com/gpu"}}}, "cluster.yaml")
    with pytest.raises(ValueError, match="ttlSecondsAfterFinished"):
        parse_runtime({"ttlSecondsAfterFinished": -1})
