"""`vlmtune submit` and `vlmtune jobs` against a real Ray head with token auth, started here for this module."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from vlmtune.cli import main

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Head:
    address: str
    token: str


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head --block` in its own session, token auth on, every port and folder its own.

    Ray's socket paths must fit in 107 bytes, so the temp dir is short. `ray stop` would kill every Ray
    on the machine, so teardown kills this head's own processes, by pid.
    """
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    gcs, dashboard, client, agent = free_ports(4)
    token = secrets.token_hex(16)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # the driver runs `vlmtune`
        "VLMTUNE_CACHE": str(tmp_path_factory.mktemp("cache")),
    }
    env.pop("RAY_ADDRESS", None)
    log = Path(temp_dir) / "head.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                str(bin_dir / "ray"),
                "start",
                "--head",
                "--block",
                f"--port={gcs}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}",
                f"--ray-client-server-port={client}",
                f"--dashboard-agent-listen-port={agent}",
                "--num-cpus=4",
                "--include-dashboard=true",
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
            ],
            cwd=temp_dir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_until_serving(address, token, process, log)
        yield Head(address, token)
    finally:
        # Every process of this head descends from the leader (workers and job drivers via the raylet);
        # a SIGTERM would drain for 30 s, and nothing here needs a graceful exit.
        for member in _descendants(process.pid):
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        process.kill()
        process.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_until_serving(address: str, token: str, process, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ray start exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if (
                requests.get(
                    f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"}, timeout=2
                ).status_code
                == 200
            ):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Ray head did not serve the Jobs API within {timeout_s}s:\n{log.read_text()[-3000:]}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_submit_smoke_and_follow_to_success(head, repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the relative ./runs/smoke must land here, not in the head's working dir
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
    code = main(
        [
            "submit",
            str(repo / "jobs" / "smoke.yaml"),
            "--address",
            head.address,
            "--wait",
            "--set",
            "spec.training.maxSteps=2",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    job_id = out.splitlines()[0]
    assert job_id.startswith("vlmtune-smoke-")
    assert "smoke: 2 steps" in out and f"{tmp_path}/runs/smoke/model" in out
    assert (tmp_path / "runs" / "smoke" / "model" / "config.json").is_file()
    assert f"{job_id}: SUCCEEDED" in err

    assert main(["jobs", "list", "--address", head.address]) == 0
    listing = capsys.readouterr().out
    assert any(line.split()[:3] == [job_id, "SUCCEEDED", "smoke"] for line in listing.splitlines())
    assert main(["jobs", "status", job_id, "--address", head.address]) == 0
    status = capsys.readouterr().out
    assert f"{job_id}: SUCCEEDED" in status and "smoke (TuningJob)" in status
    assert main(["jobs", "logs", job_id, "--address", head.address]) == 0
    assert "smoke: 2 steps" in capsys.readouterr().out


def test_stop_a_running_job(head, repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
    assert (
        main(
            [
                "submit",
                str(repo / "jobs" / "smoke.yaml"),
                "--address",
                head.address,
                "--set",
                "spec.training.maxSteps=500",
            ]
        )
        == 0
    )
    job_id = capsys.readouterr().out.strip()
    deadline = time.monotonic() + 60
    while "RUNNING" not in _status(head, job_id, capsys):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)
    assert main(["jobs", "stop", job_id, "--address", head.address]) == 0
    assert capsys.readouterr().out.strip() == f"{job_id}: STOPPED"
    assert main(["jobs", "logs", job_id, "--follow", "--address", head.address]) == 1  # ended, not succeeded


def _status(head: Head, job_id: str, capsys) -> str:
    assert main(["jobs", "status", job_id, "--address", head.address]) == 0
    return capsys.readouterr().out.splitlines()[0]


def test_a_wrong_token_is_refused_with_advice(head, monkeypatch, capsys):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert main(["jobs", "list", "--address", head.address, "--token", "not-the-token"]) == 2
    err = capsys.readouterr().err
    assert f"the Ray cluster at {head.address} rejected the token from --token" in err


def test_no_token_is_refused_with_advice(head, repo):
    # A fresh process: an embedded ray.init() earlier in this one turns on Ray's own token lookup for good.
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    result = subprocess.run(
        [sys.executable, "-m", "vlmtune.cli", "jobs", "list", "--address", head.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo,
        check=False,
    )
    assert result.returncode == 2
    assert f"the Ray cluster at {head.address} requires a token: export RAY_AUTH_TOKEN" in result.stderr


def test_an_unreachable_address_says_so(capsys):
    (port,) = free_ports(1)  # nothing listens on it
    assert main(["jobs", "list", "--address", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vlmtune jobs list: cannot reach the Ray dashboard at http://127.0.0.1:{port}")
    assert "port-forward" in err and "Traceback" not in err
