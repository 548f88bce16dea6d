"""`vlmtune render` prints exactly the RayJobs the operator builds, for every job file and for chained stages."""

from __future__ import annotations

import argparse
import json
import shlex

import pytest
import yaml
from operator_docs import GPU_RUNTIME, JOB_FILES, artifacts_for, load_job_file, needs_node_pool, stage2_doc, stage_doc

from vlmtune.cli import render as render_command
from vlmtune.spec import load_jobs
from vlmtune_operator.render import parse_artifacts, render_jobs
from vlmtune_operator.runtime import RuntimeConfig, parse_runtime


def main(argv: list[str]) -> int:
    """`vlmtune render ...` through the subcommand's own parser (independent of the other subcommands)."""
    parser = argparse.ArgumentParser(prog="vlmtune")
    render_command.register(parser.add_subparsers().add_parser, "render")
    args = parser.parse_args(argv)
    return args.handler(args)


def _render(capsys, *argv) -> list[dict]:
    assert main(["render", *map(str, argv)]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


@pytest.mark.parametrize("path", JOB_FILES, ids=[p.name for p in JOB_FILES])
def test_render_prints_what_the_operator_builds(capsys, path, tmp_path):
    jobs, argv = load_job_file(path), [path]
    runtime = RuntimeConfig()
    if needs_node_pool(jobs):
        (tmp_path / "runtime.yaml").write_text(yaml.safe_dump(GPU_RUNTIME))
        argv += ["--runtime", tmp_path / "runtime.yaml"]
        runtime = parse_runtime(GPU_RUNTIME)
    artifacts = artifacts_for(jobs)
    for name, uri in artifacts.items():
        argv += ["--artifact", f"{name}={uri}"]
    assert _render(capsys, *argv) == render_jobs(jobs, runtime, artifacts)


@pytest.fixture
def two_stage(tmp_path):
    path = tmp_path / "two-stage.yaml"
    path.write_text(yaml.safe_dump_all([stage_doc(), stage2_doc()]))
    runtime = tmp_path / "runtime.yaml"
    runtime.write_text(yaml.safe_dump(GPU_RUNTIME))
    return path, runtime


def _pretrained(rayjob: dict) -> str:
    return json.loads(shlex.split(rayjob["spec"]["entrypoint"])[3])["spec"]["model"]["pretrained"]


def test_chained_stage_renders_on_the_upstream_output_model(capsys, two_stage):
    path, runtime = two_stage
    stage1, stage2 = _render(capsys, path, "--runtime", runtime)
    assert stage1["metadata"]["name"] == "tj-visionflan-stage1"
    assert _pretrained(stage2) == "s3://runs/visionflan-stage1/model"
    assert stage2["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["nodeSelector"]
    assert stage1 == render_jobs(load_jobs([path]), parse_runtime(GPU_RUNTIME))[0]


def test_artifact_option_overrides_the_upstream_model(capsys, two_stage):
    path, runtime = two_stage
    _, stage2 = _render(capsys, path, "--runtime", runtime, "--artifact", "visionflan-stage1=s3://b/m")
    assert _pretrained(stage2) == "s3://b/m"


def test_errors_exit_nonzero_with_the_reason(capsys, two_stage):
    path, _ = two_stage
    assert main(["render", str(path), "--artifact", "visionflan-stage1"]) == 1
    assert "write it as JOB=URI" in capsys.readouterr().err
    assert main(["render", str(path)]) == 1  # the defaults know no node pool a100-80gb
    assert "unknown node pool 'a100-80gb'" in capsys.readouterr().err
    assert main(["render", str(path), "--set", "spec.training.globalBatchSize=100"]) == 1
    assert "globalBatchSize" in capsys.readouterr().err


def test_parse_artifacts():
    assert parse_artifacts(["a=s3://x=y"]) == {"a": "s3://x=y"}
    with pytest.raises(ValueError):
        parse_artifacts(["=s3://x"])
