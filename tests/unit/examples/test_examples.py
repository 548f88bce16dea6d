"""The road from the demo to the paper: the shipped values file installs (real Helm engine), its runtime config is the
one `vlmtune render --runtime` reads, the paper's job files render against it and start from LLaVA-1.5's projector,
and every file the guide and the README name exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from vlmtune.cli import main
from vlmtune.spec import TuningJob, load_jobs
from vlmtune_operator.runtime import load_runtime, parse_runtime

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "chart"))  # the chart tests' Helm helpers (plain modules)
GUIDE = REPO / "docs" / "from-demo-to-paper.md"
ILLUSTRATIVE = {"jobs/bad.yaml"}  # the README's `vlmtune validate` output shows errors of a made-up file
PAPER_JOBS = [
    "jobs/stage1.yaml",
    "jobs/two-stage.yaml",
    "jobs/compare-mixed-vs-two-stage.yaml",
    "jobs/scaling-tasks.yaml",
]


@pytest.fixture(scope="module")
def rendered():
    pytest.importorskip("helm_python", reason="helm-python-sdk (the `test` extra) renders the chart")
    from chart_engine import render

    values = yaml.safe_load((REPO / "examples" / "values-paper.yaml").read_text(encoding="utf-8"))
    return render(values=values)


def test_paper_values_render_objects_the_api_server_admits(rendered):
    from chart_validate import builtin_errors

    builtin = [
        obj for obj in rendered.objects if not obj["apiVersion"].startswith(("kueue.x-k8s.io/", "karpenter.sh/"))
    ]
    assert {"Deployment", "ConfigMap"} <= {obj["kind"] for obj in builtin}
    for obj in builtin:
        assert not builtin_errors(obj), f"{obj['kind']}/{obj['metadata']['name']}: {builtin_errors(obj)}"
    queues = rendered.of_kind("LocalQueue")
    assert [(q["metadata"]["namespace"], q["metadata"]["name"]) for q in queues] == [("team-vision", "tuning")]


def test_paper_values_pass_the_kueue_crds_when_present(rendered):
    from chart_validate import KUEUE_CRD_FILES, SHARED_CRDS, kueue_errors, kueue_schemas

    if any(not (SHARED_CRDS / name).exists() for name in KUEUE_CRD_FILES.values()):
        pytest.skip(f"Kueue CRDs not found in {SHARED_CRDS}")
    schemas = kueue_schemas()
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("kueue.x-k8s.io/"):
            assert not kueue_errors(obj, schemas), f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_runtime_example_is_what_the_chart_gives_the_operator(rendered):
    (configmap,) = [obj for obj in rendered.of_kind("ConfigMap") if "runtime.yaml" in obj.get("data", {})]
    assert load_runtime(REPO / "examples" / "runtime.yaml") == parse_runtime(configmap)


@pytest.mark.parametrize("job_file", PAPER_JOBS)
def test_paper_jobs_render_against_the_example_runtime(job_file, capsys):
    assert main(["render", str(REPO / job_file), "--runtime", str(REPO / "examples" / "runtime.yaml")]) == 0
    objects = [doc for doc in yaml.safe_load_all(capsys.readouterr().out) if doc]
    rayjobs = [obj for obj in objects if obj["kind"] == "RayJob"]
    assert rayjobs or job_file.endswith(("compare-mixed-vs-two-stage.yaml", "scaling-tasks.yaml"))
    for rayjob in rayjobs:
        workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
        assert workers["containers"][0]["image"] == "registry.example.com/ml/vlmtune:0.1.0-cuda"
        assert workers["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}


def test_every_job_built_from_pretrained_parts_starts_from_llavas_projector():
    """A stage 1 (or mixed arm) assembled from Vicuna + CLIP is the paper's recipe only with the stage-1 projector."""
    jobs = list(_expanded(sorted((REPO / "jobs").glob("*.yaml"))))
    from_parts = [job for job in jobs if isinstance(job, TuningJob) and job.spec.model.language_model]
    assert len(from_parts) >= 8  # stage1, two-stage, both mixed-vs-2s arms, four task-scaling arms
    for job in from_parts:
        assert job.spec.model.projector_weights, f"{job.name}: no projectorWeights"


def _expanded(paths: list[Path]):
    from vlmtune.spec.experiment import Experiment, expand

    for job in load_jobs(paths, []):  # together: stage2.yaml names stage1.yaml's job
        yield from (expand(job).jobs if isinstance(job, Experiment) else [job])


@pytest.mark.parametrize("document", ["README.md", "docs/from-demo-to-paper.md"])
def test_files_the_docs_name_exist(document):
    text = (REPO / document).read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:jobs|examples|constraints|charts/vlmtune/ci)/[\w./-]+\.(?:yaml|txt))", text))
    assert named, f"{document} names no repository files"
    missing = sorted(path for path in named - ILLUSTRATIVE if not (REPO / path).exists())
    assert not missing, f"{document} names files that do not exist: {missing}"


def test_the_readme_links_the_guide():
    assert "(docs/from-demo-to-paper.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    assert GUIDE.exists()
