"""The pure half of remote submission: entrypoint, path checks, ids, metadata, shipped code, addresses."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vlmtune.cli import main
from vlmtune.runners.cluster import Connection, RemoteError, address_is_here
from vlmtune.runners.remote import cluster_documents, entrypoint, local_paths, metadata, runtime_env, submission_id
from vlmtune.spec import load_jobs, parse_documents

JOB = """
apiVersion: vlmtune.dev/v1alpha1
kind: TuningJob
metadata: {name: %(name)s}
spec:
  model: {%(model)s}
  data:
    sources: [%(sources)s]
  training: {globalBatchSize: 8, microBatchSize: 4}
  resources: {workers: 2}
  output: {uri: %(output)s}
"""


def job(name="probe", model="preset: tiny", sources="{demo: {}}", output="s3://runs/probe"):
    return parse_documents(JOB % {"name": name, "model": model, "sources": sources, "output": output}, "test.yaml")[0]


def test_entrypoint_is_the_operators_and_survives_the_shell(repo):
    from vlmtune_operator.rayjob import entrypoint as operator_entrypoint

    jobs = load_jobs([repo / "jobs" / "smoke.yaml"])
    documents = [j.to_doc() for j in jobs]
    assert entrypoint(documents) == operator_entrypoint(documents[0])
    program, command, flag, payload = shlex.split(entrypoint(documents))
    assert (program, command, flag) == ("vlmtune", "run", "--spec-json")
    assert parse_documents(payload, "--spec-json")[0] == jobs[0]


def test_several_jobs_travel_as_one_list_in_file_order():
    documents = [job("stage1").to_doc(), job("stage2").to_doc()]
    payload = json.loads(shlex.split(entrypoint(documents))[-1])
    assert [doc["metadata"]["name"] for doc in payload] == ["stage1", "stage2"]


def test_demo_sources_hub_models_and_object_store_uris_are_not_local():
    hub = job(
        model="languageModel: lmsys/vicuna-13b-v1.5, visionTower: openai/clip-vit-large-patch14-336",
        sources="{uri: 's3://data/vf/train.json'}, {demo: {}}",
    )
    assert local_paths(hub.to_doc()) == []
    assert cluster_documents([hub], head_is_local=False) == [hub.to_doc()]


def test_every_local_path_is_refused_for_a_remote_head_with_upload_advice():
    local = job(
        model="pretrained: ./models/llava", sources="{uri: data/train.json, images: /data/img}", output="./runs/probe"
    )
    with pytest.raises(RemoteError) as refused:
        cluster_documents([local], head_is_local=False)
    message = str(refused.value)
    for field in (
        "spec.output.uri = ./runs/probe",
        "spec.data.sources[0].uri = data/train.json",
        "spec.data.sources[0].images = /data/img",
        "spec.model.pretrained = ./models/llava",
    ):
        assert f"probe: {field}" in message
    assert "s3://" in message and "demo" in message


def test_eval_job_benchmark_data_is_checked_too():
    evaluation = parse_documents(
        """
apiVersion: vlmtune.dev/v1alpha1
kind: EvalJob
metadata: {name: eval-probe}
spec:
  model: {pretrained: s3://runs/stage1/model}
  benchmarks: [{name: mme, data: ./mme/}, {name: pope, demo: {}}]
  output: {uri: s3://runs/eval-probe}
""",
        "eval.yaml",
    )
    assert local_paths(evaluation[0].to_doc()) == [(("spec", "benchmarks", 0, "data"), "./mme/")]
    with pytest.raises(RemoteError, match=r"eval-probe: spec\.benchmarks\[0\]\.data = \./mme/"):
        cluster_documents(evaluation, head_is_local=False)


def test_a_local_head_gets_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (document,) = cluster_documents([job(sources="{uri: data/train.json}", output="./runs/probe")], head_is_local=True)
    assert document["spec"]["output"]["uri"] == str(tmp_path / "runs" / "probe")
    assert document["spec"]["data"]["sources"][0]["uri"] == str(tmp_path / "data" / "train.json")


def test_submission_ids_are_readable_and_unique():
    jobs = [job("visionflan-stage1")]
    ids = {submission_id(jobs) for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("vlmtune-visionflan-stage1-") and len(i.rsplit("-", 1)[1]) == 8 for i in ids)


def test_metadata_names_jobs_kind_user_and_file():
    meta = metadata([job("a"), job("b")], "jobs/two.yaml")
    assert meta["job"] == "a,b" and meta["kind"] == "TuningJob" and meta["file"] == "jobs/two.yaml"
    assert meta["user"] and all(isinstance(value, str) for value in meta.values())  # Ray takes str -> str only


def test_runtime_env_ships_the_imported_packages_and_stays_small():
    import vlmtune

    env = runtime_env()
    assert env["py_modules"][0] == str(Path(vlmtune.__file__).parent)
    assert [Path(folder).name for folder in env["py_modules"]] == ["vlmtune", "vlmtune_model", "vlmtune_operator"]
    assert all((Path(folder) / "__init__.py").is_file() for folder in env["py_modules"])
    shipped = sum(f.stat().st_size for folder in env["py_modules"] for f in Path(folder).rglob("*.py"))
    assert shipped < 5 * 2**20


def test_connection_takes_flags_over_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "head.example:8265")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    resolved = Connection.resolve()
    assert (resolved.address, resolved.token, resolved.token_source) == (
        "http://head.example:8265",
        "from-env",
        "RAY_AUTH_TOKEN",
    )
    assert resolved.headers == {"Authorization": "Bearer from-env"}
    flagged = Connection.resolve("https://other:8265/", "from-flag", verify=False)
    assert (flagged.address, flagged.token, flagged.verify) == ("https://other:8265", "from-flag", False)

    monkeypatch.delenv("RAY_AUTH_TOKEN")
    (tmp_path / "token").write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    from_file = Connection.resolve()
    assert (from_file.token, from_file.token_source) == ("from-file", f"RAY_AUTH_TOKEN_PATH={tmp_path / 'token'}")


def test_connection_without_or_with_a_wrong_kind_of_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with pytest.raises(RemoteError, match="--address"):
        Connection.resolve()
    with pytest.raises(RemoteError, match="dashboard"):
        Connection.resolve("ray://head:10001")


def test_which_addresses_reach_this_machine():
    assert address_is_here("http://127.0.0.1:8265") and address_is_here("http://localhost:8265")
    assert not address_is_here("http://203.0.113.7:8265")  # TEST-NET-3: never assigned to a host
    assert not address_is_here("http://ray-head.invalid:8265")


def test_submit_refuses_local_data_for_a_remote_cluster_before_connecting(tmp_path, capsys):
    job_file = tmp_path / "local.yaml"
    job_file.write_text(
        JOB
        % {
            "name": "local-data",
            "model": "preset: tiny",
            "sources": "{uri: ./data/train.json}",
            "output": "s3://runs/local-data",
        }
    )
    code = main(["submit", str(job_file), "--address", "http://ray-head.invalid:8265"])
    err = capsys.readouterr().err
    assert code == 2
    assert "local-data: spec.data.sources[0].uri = ./data/train.json" in err
    assert "upload" in err and "cannot reach" not in err
