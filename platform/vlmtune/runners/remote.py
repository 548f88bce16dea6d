"""Run job files on a remote Ray cluster: the documents it can read, the entrypoint, the shipped code.

The cluster runs the same entrypoint as the operator's RayJobs (`vlmtune run --spec-json ...`), with this
machine's vlmtune packages shipped in the runtime environment so edits run without building an image.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import secrets
import shlex
from pathlib import Path

from vlmtune import storage
from vlmtune.runners.cluster import Cluster, Connection, RemoteError, address_is_here
from vlmtune.spec import Job
from vlmtune.train.stop import GRACE_S

SHIPPED_PACKAGES = ("vlmtune", "vlmtune_model", "vlmtune_operator")
LOCATION_KEYS = frozenset({"uri", "images", "data"})  # `data` is a URI in benchmarks, a mapping in TuningJob
MODEL_KEYS = frozenset({"pretrained", "languageModel", "visionTower"})
UPLOAD_ADVICE = (
    "upload inputs to the object store first (e.g. `aws s3 cp --recursive DIR s3://BUCKET/PREFIX/`) and name them "
    "as s3:// URIs; demo sources (`demo: {}`) are generated on the cluster and need no upload; write output to "
    "s3://BUCKET/runs/NAME (e.g. --set spec.output.uri=s3://BUCKET/runs/NAME)"
)


def local_paths(document: dict) -> list[tuple[tuple, str]]:
    """(key path, value) of every location in a job document that names this machine's disk.

    Found by key rather than by kind, so every job kind's inputs and outputs are covered.
    """
    found = []

    def walk(node, keys: tuple) -> None:
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(value, str) and _is_local(key, value):
                found.append(((*keys, key), value))
            elif isinstance(value, (dict, list)):
                walk(value, (*keys, key))

    walk(document["spec"], ("spec",))
    return found


def _is_local(key, value: str) -> bool:
    if storage.is_remote(value):
        return False
    if key in LOCATION_KEYS:
        return True
    # Model fields also take hub ids ("org/name"): only what looks like, or is, a path is local.
    return key in MODEL_KEYS and (value.startswith(("/", ".", "~", "file:")) or Path(value).expanduser().exists())


def cluster_documents(jobs: list[Job], head_is_local: bool) -> list[dict]:
    """The job documents as the cluster must see them.

    A head on this machine shares its disk, but not its working directory: relative paths become
    absolute so artifacts land where the user looks. Any other head cannot read local paths at all.

    Raises:
        RemoteError: listing every local path, with upload advice, when the head is elsewhere.
    """
    documents, refused = [], []
    for job in jobs:
        document = job.to_doc()
        for keys, value in local_paths(document):
            if head_is_local:
                _set(document, keys, storage.absolute(value))
            else:
                refused.append(f"  {job.name}: {_field(keys)} = {value}")
        documents.append(document)
    if refused:
        raise RemoteError(
            "the cluster cannot read paths on this machine:\n" + "\n".join(refused) + f"\nadvice: {UPLOAD_ADVICE}"
        )
    return documents


def entrypoint(documents: list[dict]) -> str:
    """The operator's RayJob entrypoint: one shell-quoted JSON argument (a single job is passed bare)."""
    payload = documents[0] if len(documents) == 1 else documents
    return f"vlmtune run --spec-json {shlex.quote(json.dumps(payload, separators=(',', ':')))}"


def submission_id(jobs: list[Job]) -> str:
    """Readable and unique: the first job's name, then random hex so a resubmission never collides."""
    return f"vlmtune-{jobs[0].name}-{secrets.token_hex(4)}"


def metadata(jobs: list[Job], source: str) -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry or USER
        user = "unknown"
    return {
        "job": ",".join(job.name for job in jobs),
        "kind": ",".join(sorted({job.kind for job in jobs})),
        "user": user,
        "file": source,
        "submitter": "vlmtune submit",
    }


def runtime_env() -> dict:
    """Ship this machine's packages: py_modules come before site-packages on every job process's path.

    Only the three package folders travel (a few hundred KiB), never .venv, runs/ or data.
    """
    folders = [str(Path(importlib.util.find_spec(name).origin).parent) for name in SHIPPED_PACKAGES]
    # Unbuffered so `--follow` shows progress as it happens, not when the driver exits. `vlmtune jobs stop` sends
    # SIGTERM and Ray kills the driver 3 s later by default: leave it the time to checkpoint at the next step.
    env = {"PYTHONUNBUFFERED": "1", "RAY_JOB_STOP_WAIT_TIME_S": str(int(GRACE_S) + 30)}
    return {"py_modules": folders, "excludes": ["__pycache__/", "*.pyc"], "env_vars": env}


def submit(jobs: list[Job], connection: Connection, source: str) -> tuple[Cluster, str]:
    """Check, then submit every job in `jobs` as one Ray job. Returns the cluster and the submission id."""
    # Only a head reached through this machine's addresses can be local; ask it which node it runs on,
    # since `kubectl port-forward` also answers on localhost.
    cluster = Cluster(connection) if address_is_here(connection.address) else None
    documents = cluster_documents(jobs, head_is_local=bool(cluster and cluster.head_is_local()))
    cluster = cluster or Cluster(connection)
    with cluster.errors():
        job_id = cluster.client.submit_job(
            entrypoint=entrypoint(documents),
            submission_id=submission_id(jobs),
            metadata=metadata(jobs, source),
            runtime_env=runtime_env(),
        )
    return cluster, job_id


def _set(document: dict, keys: tuple, value: str) -> None:
    node = document
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def _field(keys: tuple) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys).lstrip(".")
