"""Handlers as plain functions: `kopf.Patch` in, facade calls and status patches out (the facade is faked)."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone

import kopf
import pytest
from operator_docs import FakeClient, live, stage2_doc, stage_doc

from vlmtune.spec import KINDS
from vlmtune.spec.crd import plural_of
from vlmtune_operator.handlers import configure, reconcile, refresh_status, register
from vlmtune_operator.run import RUN_HASH_ANNOTATION
from vlmtune_operator.stores import Stores

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NS = "team-vision"


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def _reconcile(body, client, runtime) -> kopf.Patch:
    patch = kopf.Patch()
    reconcile(body, patch, client, runtime, now=NOW)
    return patch


def _entry_document(rayjob: dict) -> dict:
    return json.loads(shlex.split(rayjob["spec"]["entrypoint"])[3])


def test_create_builds_the_rayjob_owned_by_the_job(client, gpu_runtime):
    patch = _reconcile(live(stage_doc(), uid="job-uid"), client, gpu_runtime)
    rayjob = client.rayjobs[(NS, "tj-visionflan-stage1")]
    assert rayjob["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    assert patch.status["phase"] == "Queued" and patch.status["rayJobName"] == "tj-visionflan-stage1"
    assert patch.status["queue"] == "tuning" and patch.status["observedGeneration"] == 1
    assert "kubectl.kubernetes.io" not in rayjob["spec"]["entrypoint"]  # tools' annotations stay out of the run


def test_reconcile_is_idempotent(client, gpu_runtime):
    first = _reconcile(live(stage_doc()), client, gpu_runtime)
    again = _reconcile(live(stage_doc(), status=dict(first.status)), client, gpu_runtime)
    assert client.creates == 1 and len(client.rayjobs) == 1
    assert dict(again.status) == {}  # nothing left to change


def test_lost_status_update_adopts_the_existing_rayjob(client, gpu_runtime):
    _reconcile(live(stage_doc()), client, gpu_runtime)
    patch = _reconcile(live(stage_doc()), client, gpu_runtime)  # the status patch of the first run was lost
    assert client.creates == 1 and patch.status["rayJobName"] == "tj-visionflan-stage1"


def test_foreign_rayjob_with_our_name_is_refused(client, gpu_runtime):
    client.rayjobs[(NS, "tj-visionflan-stage1")] = {"metadata": {"name": "tj-visionflan-stage1", "labels": {}}}
    with pytest.raises(kopf.PermanentError):
        patch = kopf.Patch()
        reconcile(live(stage_doc()), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "NameConflict"


def test_downstream_waits_for_upstream_success(client, gpu_runtime):
    client.jobs[(NS, "visionflan-stage1")] = live(stage_doc(), status={"phase": "Running"})
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError) as raised:
        reconcile(live(stage2_doc()), patch, client, gpu_runtime, now=NOW)
    assert raised.value.delay == gpu_runtime.upstream_poll_seconds
    assert (patch.status["phase"], patch.status["reason"]) == ("Pending", "WaitingForUpstream")
    assert "visionflan-stage1 (Running)" in patch.status["message"] and not client.rayjobs


def test_downstream_starts_on_the_recorded_model(client, gpu_runtime):
    recorded = "s3://elsewhere/stage1/model"  # what the upstream recorded wins over any convention
    client.jobs[(NS, "visionflan-stage1")] = live(
        stage_doc(), status={"phase": "Succeeded", "artifacts": {"model": recorded}}
    )
    _reconcile(live(stage2_doc()), client, gpu_runtime)
    rayjob = client.rayjobs[(NS, "tj-visionflan-stage2")]
    assert _entry_document(rayjob)["spec"]["model"]["pretrained"] == recorded


def test_failed_upstream_fails_the_downstream(client, gpu_runtime):
    client.jobs[(NS, "visionflan-stage1")] = live(stage_doc(), status={"phase": "Failed", "reason": "JobFailed"})
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile(live(stage2_doc()), patch, client, gpu_runtime, now=NOW)
    assert (patch.status["phase"], patch.status["reason"]) == ("Failed", "UpstreamFailed") and not client.rayjobs


def test_finished_jobs_are_never_rerun(client, gpu_runtime):
    patch = _reconcile(
        live(stage_doc(), status={"phase": "Succeeded", "rayJobName": "tj-visionflan-stage1"}), client, gpu_runtime
    )
    assert not client.rayjobs and dict(patch) == {}


def test_vanished_rayjob_is_not_silently_recreated(client, gpu_runtime):
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile(
            live(stage_doc(), status={"phase": "Running", "rayJobName": "tj-visionflan-stage1"}),
            patch,
            client,
            gpu_runtime,
            now=NOW,
        )
    assert patch.status["reason"] == "RayJobVanished" and not client.rayjobs


def test_invalid_spec_fails_with_the_field_path(client, gpu_runtime):
    doc = stage_doc()
    doc["spec"]["training"]["globalBatchSize"] = 100
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile(live(doc), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "InvalidSpec"
    assert "spec.training.globalBatchSize: 100 is not divisible" in patch.status["message"]


def test_unknown_node_pool_fails_with_the_fix(client, gpu_runtime):
    doc = stage_doc(resources={"workers": 8, "gpusPerWorker": 1, "nodePool": "tpu"})
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        reconcile(live(doc), patch, client, gpu_runtime, now=NOW)
    assert patch.status["reason"] == "InvalidForCluster" and "unknown node pool 'tpu'" in patch.status["message"]


def test_spec_change_after_creation_is_reported_not_applied(client, gpu_runtime):
    first = _reconcile(live(stage_doc()), client, gpu_runtime)
    edited = stage_doc(training={"globalBatchSize": 256})
    patch = _reconcile(live(edited, generation=2, status=dict(first.status)), client, gpu_runtime)
    [condition] = [c for c in patch.status["conditions"] if c["type"] == "SpecOutOfDate"]
    assert condition["status"] == "True" and "re-apply" in condition["message"]
    assert (
        client.creates == 1
        and 'globalBatchSize":128' in client.rayjobs[(NS, "tj-visionflan-stage1")]["spec"]["entrypoint"]
    )


def test_timer_maps_the_rayjob_and_workload(client, gpu_runtime):
    created = _reconcile(live(stage_doc()), client, gpu_runtime)
    rayjob = client.rayjobs[(NS, "tj-visionflan-stage1")]
    rayjob["spec"]["suspend"] = False  # Kueue unsuspends it on admission
    rayjob["status"] = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "dashboardURL": "head:8265"}
    client.workloads[rayjob["metadata"]["uid"]] = {
        "status": {
            "conditions": [
                {
                    "type": "Admitted",
                    "status": "True",
                    "reason": "Admitted",
                    "lastTransitionTime": "2026-03-01T11:00:00Z",
                }
            ]
        }
    }
    patch = kopf.Patch()
    refresh_status(live(stage_doc(), status=dict(created.status)), patch, client, gpu_runtime, now=NOW)
    assert (patch.status["phase"], patch.status["stage"]) == ("Running", "training")
    assert patch.status["dashboardURL"] == "head:8265"


def test_timer_fails_a_job_whose_rayjob_vanished(client, gpu_runtime):
    patch = kopf.Patch()
    refresh_status(
        live(stage_doc(), status={"phase": "Running", "rayJobName": "tj-gone"}), patch, client, gpu_runtime, now=NOW
    )
    assert (patch.status["phase"], patch.status["reason"]) == ("Failed", "RayJobVanished")


def test_timer_leaves_jobs_without_rayjob_to_reconcile(client, gpu_runtime):
    patch = kopf.Patch()
    refresh_status(live(stage2_doc(), status={"phase": "Pending"}), patch, client, gpu_runtime, now=NOW)
    assert dict(patch) == {}


def test_register_covers_every_kind_with_one_reconcile_and_a_timer(gpu_runtime):
    registry = kopf.OperatorRegistry()
    register(registry, FakeClient, gpu_runtime)
    handlers = registry._changing.get_all_handlers()
    by_kind = {
        plural_of(kind): sorted(h.id for h in handlers if h.selector.any_name == plural_of(kind)) for kind in KINDS
    }
    assert by_kind == {plural_of(kind): ["reconcile-create", "reconcile-resume", "reconcile-update"] for kind in KINDS}
    timers = registry._spawning.get_all_handlers()
    assert sorted(t.selector.any_name for t in timers) == sorted(plural_of(kind) for kind in KINDS)
    assert {t.interval for t in timers} == {gpu_runtime.status_interval_seconds}


def test_configure_keeps_kopf_state_out_of_status():
    settings = kopf.OperatorSettings()
    configure(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)


def _running_job(client, runtime, output_uri: str, status_extra: dict | None = None) -> tuple[dict, dict]:
    doc = stage_doc(output={"uri": output_uri}, training={"globalBatchSize": 128, "maxSteps": 128})
    created = _reconcile(live(doc), client, runtime)
    rayjob = client.rayjobs[(NS, "tj-visionflan-stage1")]
    rayjob["spec"]["suspend"] = False
    rayjob["status"] = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
    return doc, dict(created.status) | (status_extra or {})


def _record(client, **fields) -> str:
    """job.json as `vlmtune run` writes it for the run the job's RayJob carries."""
    annotations = client.rayjobs[(NS, "tj-visionflan-stage1")]["metadata"]["annotations"]
    return json.dumps(
        {
            "kind": "TuningJob",
            "name": "visionflan-stage1",
            "specHash": annotations[RUN_HASH_ANNOTATION],
            "phase": "Running",
        }
        | fields
    )


def test_timer_reads_progress_and_metrics_from_the_run_folder(client, gpu_runtime, tmp_path):
    doc, status = _running_job(client, gpu_runtime, str(tmp_path))
    row = {"step": 37, "loss": 2.5, "learning_rate": 1e-4, "tokens_per_s": 812.5, "samples_per_s": 3.0, "mfu": 0.42}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(row) + "\n" + '{"step": 38, "lo')  # 38 is being written
    (tmp_path / "job.json").write_text(_record(client))
    patch = kopf.Patch()
    refresh_status(live(doc, status=status), patch, client, gpu_runtime, now=NOW, stores=Stores(client, gpu_runtime))
    assert patch.status["phase"] == "Running" and patch.status["progress"] == "37/128 (28%)"
    assert patch.status["metrics"] == {
        "step": 37,
        "loss": 2.5,
        "learningRate": 1e-4,
        "tokensPerSecond": 812.5,
        "samplesPerSecond": 3.0,
        "mfu": 0.42,
    }


def test_figures_of_another_run_in_the_same_folder_are_cleared(client, gpu_runtime, tmp_path):
    doc, status = _running_job(client, gpu_runtime, str(tmp_path), {"progress": "5/128 (3%)", "metrics": {"step": 5}})
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 90, "loss": 0.5}) + "\n")
    (tmp_path / "job.json").write_text(_record(client, specHash="an-older-spec"))
    patch = kopf.Patch()
    refresh_status(live(doc, status=status), patch, client, gpu_runtime, now=NOW, stores=Stores(client, gpu_runtime))
    assert patch.status["progress"] is None and patch.status["metrics"] is None  # merge patch removes them


def test_timer_keeps_the_last_figures_when_the_store_is_unreachable(client, gpu_runtime, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing answers
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    doc, status = _running_job(client, gpu_runtime, "s3://runs/x", {"progress": "5/128 (3%)"})
    patch = kopf.Patch()
    refresh_status(live(doc, status=status), patch, client, gpu_runtime, now=NOW, stores=Stores(client, gpu_runtime))
    assert patch.status["phase"] == "Running" and "progress" not in patch.status  # unchanged, not cleared


def test_timer_does_not_read_the_store_before_the_job_is_admitted(client, gpu_runtime, tmp_path):
    doc, status = _running_job(client, gpu_runtime, str(tmp_path))
    client.rayjobs[(NS, "tj-visionflan-stage1")]["status"] = {}  # suspended, waiting for Kueue
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 1.0}) + "\n")  # an older run's
    patch = kopf.Patch()
    refresh_status(live(doc, status=status), patch, client, gpu_runtime, now=NOW, stores=Stores(client, gpu_runtime))
    assert "progress" not in patch.status


class _RefusingApi:
    """A CustomObjectsApi whose create answers like the API server does when something refuses the object."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message

    def create_namespaced_custom_object(self, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        error = ApiException(status=self.status, reason="Forbidden")
        error.body = json.dumps({"kind": "Status", "message": self.message})
        raise error


@pytest.mark.parametrize(
    "status, message, refused",
    [
        (
            403,
            "rayjobs.ray.io \"tj-x\" is forbidden: ValidatingAdmissionPolicy 'vlmtune-rayjobs' with binding "
            "'vlmtune-rayjobs' denied request: Ray clusters must use token auth",
            True,
        ),
        (422, 'RayJob.ray.io "tj-x" is invalid: spec.rayClusterSpec: Required value', True),
        (
            403,
            'rayjobs.ray.io is forbidden: User "system:serviceaccount:vlmtune-system:vlmtune" cannot create '
            'resource "rayjobs"',
            False,
        ),  # RBAC: a fixed Role lets a retry through
    ],
)
def test_admission_refusals_are_final_and_rbac_denials_are_retried(status, message, refused):
    pytest.importorskip("kubernetes")
    from kubernetes.client.exceptions import ApiException

    from vlmtune_operator.client import KubeClient
    from vlmtune_operator.errors import RayJobRefused

    client = KubeClient(_RefusingApi(status, message))
    expected = RayJobRefused if refused else ApiException
    with pytest.raises(expected) as caught:
        client.create_rayjob("team-vision", {"metadata": {"name": "tj-x"}})
    if refused:
        assert str(caught.value).endswith(message)
