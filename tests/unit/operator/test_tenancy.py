"""A job reads and writes only its tenant's storage, shown against a real S3-compatible server (moto on 127.0.0.1)
with IAM enforced: team-a and team-b each hold keys that reach only their own prefix, in a Secret in their own
namespace; the operator holds none of its own.

- team-a's job shows its run's figures, read with team-a's Secret;
- a team-b job naming team-a's output is refused by the operator (OutputOutsideTenant) and by the chart's
  admission policy, and never shows team-a's figures; team-b's reader cannot read team-a's files at all;
- local paths are refused on a cluster, and the reader does not open them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from lifecycle import Cluster, Job, RayApp
from operator_docs import GPU_RUNTIME, live, stage_doc

from s3_server import running_s3
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.run import RUN_HASH_ANNOTATION
from vlmtune_operator.runtime import parse_runtime
from vlmtune_operator.store import StoreReader, StoreUnavailable
from vlmtune_operator.stores import Stores
from vlmtune_operator.tenancy import LocalPathOnCluster, NotATenant, OutputOutsideTenant, check_output, within

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
BUCKET = "runs"
TENANTS = {"team-a": {"outputPrefix": "s3://runs/team-a/"}, "team-b": {"outputPrefix": "s3://runs/team-b/"}}
RUNTIME = parse_runtime(GPU_RUNTIME | {"tenants": TENANTS})


def _policy(prefix: str) -> str:
    # Objects under the team's prefix only. (moto names HEAD requests s3:HeadObject; AWS counts them as GetObject.)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:HeadObject", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::{BUCKET}/{prefix}*",
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def store():
    """moto's S3 with one IAM user per team; yields (endpoint, {team: Secret data}), IAM enforced meanwhile."""
    from moto.core.authorization import enable_iam_authentication

    with running_s3(BUCKET) as server:
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
        secrets = {}
        for team in TENANTS:
            iam.create_user(UserName=team)
            iam.put_user_policy(UserName=team, PolicyName="own-prefix", PolicyDocument=_policy(f"{team}/"))
            key = iam.create_access_key(UserName=team)["AccessKey"]
            secrets[team] = {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_ENDPOINT_URL": server.endpoint,
                "AWS_REGION": "us-east-1",
            }
        s3.put_object(
            Bucket=BUCKET,
            Key="team-a/exp/metrics.jsonl",
            Body=json.dumps({"step": 42, "loss": 1.5, "total_steps": 100}).encode() + b"\n",
        )
        with enable_iam_authentication():
            yield server.endpoint, secrets, s3


def _cluster(secrets: dict) -> Cluster:
    cluster = Cluster(START)
    for team, data in secrets.items():
        cluster.secrets[(team, "object-store")] = data
    return cluster


def _job(cluster: Cluster, namespace: str, output: str) -> Job:
    doc = stage_doc(output={"uri": output})
    doc["metadata"]["namespace"] = namespace
    return Job(cluster, live(doc), RUNTIME, stores=Stores(cluster, RUNTIME))


def _run(job: Job) -> None:
    """Create the RayJob, admit it, and let it run (KubeRay and Kueue as in the lifecycle harness)."""
    job.change()
    for _ in range(4):
        job.cluster.kueue()
        job.cluster.kuberay()
    if job.rayjob is not None:
        job.cluster.admit(job.rayjob)
        job.cluster.apps[job.rayjob["metadata"]["uid"]] = RayApp(job_status="RUNNING")
        for _ in range(6):
            job.cluster.kueue()
            job.cluster.kuberay()
    job.tick()


@pytest.mark.timeout(120)
def test_team_b_cannot_see_team_a_figures(store):
    endpoint, secrets, s3 = store
    cluster = _cluster(secrets)
    team_a = _job(cluster, "team-a", "s3://runs/team-a/exp")
    _run(team_a)
    record = {
        "kind": "TuningJob",
        "name": team_a.name,
        "specHash": team_a.rayjob["metadata"]["annotations"][RUN_HASH_ANNOTATION],
        "phase": "Running",
    }
    with pytest.raises(Exception):  # the operator's own process holds no key that reaches the bucket
        s3.get_object(Bucket=BUCKET, Key="team-a/exp/metrics.jsonl")
    team_a_store = Stores(cluster, RUNTIME).for_namespace("team-a")
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=secrets["team-a"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secrets["team-a"]["AWS_SECRET_ACCESS_KEY"],
    ).put_object(Bucket=BUCKET, Key="team-a/exp/job.json", Body=json.dumps(record).encode())
    team_a.tick()
    assert team_a.status["phase"] == "Running" and team_a.status["progress"] == "42/100 (42%)"
    assert team_a_store.read_json("s3://runs/team-a/exp/job.json") == record

    # team-b names team-a's output: refused before any RayJob exists, and no figure of team-a's shows.
    cluster.jobs.clear()
    team_b = _job(cluster, "team-b", "s3://runs/team-a/exp")
    team_b.change()
    team_b.tick()
    assert (team_b.status["phase"], team_b.status["reason"]) == ("Failed", "OutputOutsideTenant")
    assert team_b.rayjob is None or team_b.rayjob["metadata"]["labels"]["vlmtune.dev/job"] != team_b.name
    assert not {"progress", "metrics", "results"} & set(team_b.status)
    # Nor could the operator read them on team-b's behalf: team-b's Secret does not reach team-a's prefix.
    with pytest.raises(StoreUnavailable, match="AccessDenied|Forbidden|403"):
        Stores(cluster, RUNTIME).for_namespace("team-b").read_json("s3://runs/team-a/exp/job.json")


def test_a_run_record_of_another_job_in_my_folder_clears_the_figures(store):
    # Inside a tenant's own prefix, figures still come only from this job's run (name, kind and spec hash).
    endpoint, secrets, _ = store
    cluster = _cluster(secrets)
    job = _job(cluster, "team-a", "s3://runs/team-a/shared")
    _run(job)
    writer = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=secrets["team-a"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secrets["team-a"]["AWS_SECRET_ACCESS_KEY"],
    )
    mine = {
        "kind": "TuningJob",
        "name": job.name,
        "phase": "Running",
        "specHash": job.rayjob["metadata"]["annotations"][RUN_HASH_ANNOTATION],
    }
    writer.put_object(Bucket=BUCKET, Key="team-a/shared/metrics.jsonl", Body=b'{"step": 7, "loss": 2.0}\n')
    writer.put_object(Bucket=BUCKET, Key="team-a/shared/job.json", Body=json.dumps(mine).encode())
    job.tick()
    assert job.status["progress"] == "step 7"
    writer.put_object(
        Bucket=BUCKET, Key="team-a/shared/job.json", Body=json.dumps(mine | {"name": "someone-else"}).encode()
    )
    job.tick()
    assert job.status["phase"] == "Running" and "progress" not in job.status and "metrics" not in job.status


def test_no_secret_no_figures(store):
    _, secrets, _ = store
    cluster = _cluster({"team-a": secrets["team-a"]})  # team-b has none
    assert Stores(cluster, RUNTIME).for_namespace("team-b") is None


def test_jobs_outside_tenants_or_on_local_paths_are_refused():
    check_output(RUNTIME, "team-a", "s3://runs/team-a/x")
    check_output(RUNTIME, "team-a", "s3://runs/team-a")
    with pytest.raises(OutputOutsideTenant, match="write under s3://runs/team-a/"):
        check_output(RUNTIME, "team-a", "s3://runs/team-ab/x")  # a longer name is not a sub-folder
    with pytest.raises(LocalPathOnCluster):
        check_output(RUNTIME, "team-a", "./runs/x")
    with pytest.raises(LocalPathOnCluster):
        check_output(RUNTIME, "team-a", "file:///srv/runs/x")
    with pytest.raises(NotATenant, match="'default' is not a tenant namespace"):
        check_output(RUNTIME, "default", "s3://runs/team-a/x")
    doc = stage_doc(output={"uri": "s3://runs/team-b/x"})
    doc["metadata"]["namespace"] = "team-a"
    from operator_docs import job

    with pytest.raises(OutputOutsideTenant):
        build_rayjob(job(doc), RUNTIME)
    assert within("s3://runs/team-a/", "s3://runs/team-a") and not within("s3://runs/team-abc", "s3://runs/team-a/")


def test_the_cluster_reader_opens_no_local_path(tmp_path):
    (tmp_path / "job.json").write_text('{"phase": "Succeeded"}')
    assert StoreReader().read_json(str(tmp_path / "job.json")) == {"phase": "Succeeded"}  # a laptop may
    with pytest.raises(StoreUnavailable, match="not read on a cluster"):
        StoreReader(credentials={}, allow_local=False).read_json(str(tmp_path / "job.json"))


def test_a_secret_without_keys_is_not_a_credential():
    with pytest.raises(StoreUnavailable, match="no AWS_ACCESS_KEY_ID"):
        StoreReader(credentials={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}).read_json("s3://runs/team-a/job.json")
