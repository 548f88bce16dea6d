"""`submit` and `jobs` against an address that accepts TCP connections and never answers (a wrong port behind a
port-forward, a hung head): one line and exit code 2 in bounded time, never a hang."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from vlmtune.runners.cluster import Cluster, Connection, RemoteError

TIMEOUT_S = 2


@pytest.fixture
def silent_server():
    """A server on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    server.close()


def test_the_client_gives_up_with_advice(silent_server):
    started = time.monotonic()
    with pytest.raises(RemoteError, match=f"did not answer within {TIMEOUT_S}s"):
        Cluster(Connection.resolve(silent_server, timeout_s=TIMEOUT_S))
    assert time.monotonic() - started < 4 * TIMEOUT_S


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"],
        ["jobs", "status", "raysubmit_x"],
        ["jobs", "stop", "x"],
        ["jobs", "logs", "x", "--follow"],
        ["submit", "jobs/smoke.yaml"],
    ],
)
def test_every_command_fails_in_bounded_time(silent_server, command, repo):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "vlmtune.cli", *command, "--address", silent_server, "--timeout", str(TIMEOUT_S)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo,
        env={"PATH": "/usr/bin:/bin", "HOME": str(repo), "RAY_AUTH_TOKEN": "t"},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-1500:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not answer" in lines[0] and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert elapsed < 60, elapsed  # interpreter start and Ray's imports included; the request itself is bounded
