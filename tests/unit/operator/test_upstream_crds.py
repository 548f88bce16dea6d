"""Every RayJob we build is one KubeRay v1.7.0 and Kueue v0.19 accept; every job file is one our CRD accepts.

The validator is checked to bite (negative controls), so a pass means something.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from kube_schema import RAYJOB_CRD, admit, crd_schema, kuberay_errors, kueue_errors, load_crd
from operator_docs import (
    GPU_RUNTIME,
    JOB_FILES,
    artifacts_for,
    eval_doc,
    job,
    load_job_file,
    needs_node_pool,
    stage2_doc,
    stage_doc,
)

from vlmtune.spec import Experiment, TuningJob, load_jobs
from vlmtune.spec.crd import generate_crds
from vlmtune.spec.status import Phase
from vlmtune_operator.experiment import report_rayjob
from vlmtune_operator.render import render_jobs
from vlmtune_operator.runtime import RuntimeConfig, parse_runtime
from vlmtune_operator.status import Verdict, compose

RUNTIMES = {"defaults": RuntimeConfig(), "gpu-cluster": parse_runtime(GPU_RUNTIME)}
# A job file that renders with the default runtime (names no GPU node pool) for the negative controls.
PLAIN_JOB_FILE = next(path for path in JOB_FILES if not needs_node_pool(load_job_file(path)))


@pytest.fixture(scope="module")
def rayjob_schema() -> dict:
    if not RAYJOB_CRD.exists():
        pytest.skip(f"upstream KubeRay CRD not found at {RAYJOB_CRD} (the shared/ folder beside the checkout)")
    return crd_schema(load_crd(RAYJOB_CRD), "v1")


@pytest.fixture(scope="module")
def our_schemas() -> dict[str, dict]:
    return {crd["spec"]["names"]["kind"]: crd_schema(crd, "v1alpha1") for crd in generate_crds()}


def _assert_accepted(schema: dict, rayjob: dict) -> dict:
    defaulted, errors = admit(schema, rayjob)
    errors += kuberay_errors(defaulted) + kueue_errors(defaulted)
    assert not errors, "\n".join(errors)
    return defaulted


def test_job_files_exist():
    assert JOB_FILES, "jobs/ holds no job file"


@pytest.mark.parametrize("runtime", RUNTIMES.values(), ids=RUNTIMES.keys())
@pytest.mark.parametrize("path", JOB_FILES, ids=[p.name for p in JOB_FILES])
def test_rayjobs_of_every_job_file_are_accepted(rayjob_schema, our_schemas, path, runtime):
    jobs = load_job_file(path)
    if needs_node_pool(jobs) and not runtime.node_pools:
        pytest.skip(f"{path.name} names a GPU node pool; the default runtime configures none")
    objects = render_jobs(jobs, runtime, artifacts_for(jobs))
    rayjobs = [obj for obj in objects if obj["kind"] == "RayJob"]
    assert rayjobs, f"{path.name} renders no RayJob"
    for rayjob in rayjobs:
        defaulted = _assert_accepted(rayjob_schema, rayjob)
        assert defaulted["spec"]["submissionMode"] == "K8sJobMode"
        assert defaulted["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["numOfHosts"] == 1  # a schema default
    for child in (obj for obj in objects if obj["kind"] != "RayJob"):  # an experiment's child jobs
        defaulted, errors = admit(our_schemas[child["kind"]], child)
        assert not errors, "\n".join(errors)
        assert job(defaulted) == job(child)
    for experiment in (loaded for loaded in jobs if isinstance(loaded, Experiment)):
        report = _assert_accepted(rayjob_schema, report_rayjob(experiment, runtime))
        assert "workerGroupSpecs" not in report["spec"]["rayClusterSpec"]  # the report needs no workers


def test_gpu_two_stage_and_eval_rayjobs_are_accepted(rayjob_schema):
    runtime = parse_runtime(GPU_RUNTIME)
    jobs = [job(stage_doc()), job(stage2_doc()), job(eval_doc())]
    rayjobs = render_jobs(jobs, runtime)
    assert [r["metadata"]["name"] for r in rayjobs] == [
        "tj-visionflan-stage1",
        "tj-visionflan-stage2",
        "ej-eval-stage1",
    ]
    for rayjob in rayjobs:
        _assert_accepted(rayjob_schema, rayjob)
        assert 1 + len(rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]) + 1 <= 8  # fits even Kueue < 0.18


def test_unknown_fields_are_rejected(rayjob_schema):
    rayjob = render_jobs(load_jobs([PLAIN_JOB_FILE]), RuntimeConfig())[0]
    rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["gpus"] = 1
    _, errors = admit(rayjob_schema, rayjob)
    assert any("'gpus' was unexpected" in error for error in errors)


def test_cel_rules_are_evaluated(rayjob_schema):
    rayjob = render_jobs(load_jobs([PLAIN_JOB_FILE]), RuntimeConfig())[0]
    broken = copy.deepcopy(rayjob)
    rule = {"condition": {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Failed"}, "policy": "DeleteCluster"}
    broken["spec"]["deletionStrategy"] = {"onSuccess": {"policy": "DeleteCluster"}, "deletionRules": [rule]}
    _, errors = admit(rayjob_schema, broken)
    assert errors == [
        "spec.deletionStrategy: legacy policies (onSuccess/onFailure) and deletionRules cannot be used together "
        "within the same deletionStrategy",
        "spec.deletionStrategy.deletionRules[0].condition: JobStatus and JobDeploymentStatus cannot be used "
        "together within the same deletion condition.",
    ]
    broken = copy.deepcopy(rayjob)
    broken["spec"]["managedBy"] = "someone-else"
    _, errors = admit(rayjob_schema, broken)
    assert errors == [
        "spec.managedBy: the managedBy field value must be either 'ray.io/kuberay-operator' "
        "or 'kueue.x-k8s.io/multikueue'"
    ]


def test_kueue_rules_bite():
    rayjob = render_jobs(load_jobs([PLAIN_JOB_FILE]), parse_runtime(GPU_RUNTIME))[0]
    rayjob["spec"]["shutdownAfterJobFinishes"] = False
    rayjob["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] = True
    groups = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    groups += [dict(groups[0], groupName=f"g{i}") for i in range(16)]
    errors = kueue_errors(rayjob)
    assert len(errors) == 3 and "19 pod sets; Kueue allows 18" in errors[-1]


def test_kuberay_rules_bite():
    rayjob = render_jobs(load_jobs([PLAIN_JOB_FILE]), RuntimeConfig())[0]
    rayjob["metadata"]["name"] = "x" * 48
    rayjob["spec"]["suspend"] = True
    rayjob["spec"]["shutdownAfterJobFinishes"] = False
    assert len(kuberay_errors(rayjob)) == 2


@pytest.mark.parametrize("path", JOB_FILES, ids=[p.name for p in JOB_FILES])
def test_every_job_file_is_accepted_by_our_crd(our_schemas, path):
    for loaded in load_job_file(path):
        defaulted, errors = admit(our_schemas[loaded.kind], loaded.to_doc())
        assert not errors, "\n".join(errors)
        assert type(loaded).model_validate(defaulted) == loaded  # API-server defaults agree with the models'


def test_job_file_with_raw_yaml_defaults_round_trips(our_schemas):
    # A minimal document (no optional sections) is defaulted by the API server into one the models accept.
    document = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "mini"},
        "spec": {"model": {"preset": "tiny"}, "data": {"sources": [{"demo": {}}]}, "output": {"uri": "s3://runs/mini"}},
    }
    defaulted, errors = admit(our_schemas["TuningJob"], document)
    assert not errors
    assert defaulted["spec"]["data"]["sources"][0]["demo"]["perTask"] == 64
    assert TuningJob.model_validate(defaulted) == TuningJob.model_validate(document)


def test_eval_job_is_accepted_by_its_crd(our_schemas):
    defaulted, errors = admit(our_schemas["EvalJob"], eval_doc())
    assert not errors, errors
    assert job(defaulted) == job(eval_doc())


def test_our_crd_rejects_what_the_models_reject(our_schemas):
    document = stage_doc()
    document["spec"]["training"]["learningRate"] = 0
    document["spec"]["data"]["mixture"] = "random"
    document["spec"]["resources"]["gpus"] = 1
    _, errors = admit(our_schemas["TuningJob"], document)
    assert len(errors) == 3, errors


@pytest.mark.parametrize("phase", list(Phase))
def test_statuses_we_write_fit_our_status_schema(our_schemas, phase):
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    status = compose(
        {"rayJobName": "tj-x", "progress": "120/500"},
        Verdict(phase, "Because", "why", "stage", now),
        3,
        now,
        kind="TuningJob",
        admitted=True,
        dashboardURL="http://head:8265",
        queue="tuning",
        artifacts={"model": "s3://runs/x/model"},
        waitingSince=now,
        activeSeconds=60,
        activeSince=now,
        upstreams={"stage1": "uid-1"},
    )
    document = stage_doc() | {"status": status}
    _, errors = admit(our_schemas["TuningJob"], document)
    assert not errors, errors
