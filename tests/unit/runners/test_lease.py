"""One writer per output: the lease refuses a second run naming the holder, frees itself when its holder dies
(locally at once; on S3 after the TTL, or at once for a dead process of this host), and a run whose lease
was taken over learns it at its next heartbeat. S3 runs against moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from s3_server import running_s3
from vlmtune import storage
from vlmtune.runners.lease import Holder, Lease, LeaseHeld
from vlmtune.spec.layout import LEASE

BUCKET = "vlmtune-lease"


@pytest.fixture(scope="module")
def s3():
    with running_s3(BUCKET) as server:
        yield server


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    with Lease(str(tmp_path), "stage1"), pytest.raises(LeaseHeld) as refused:
        Lease(str(tmp_path), "stage1").acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "job stage1" in message
    assert "\n" not in message
    assert not (tmp_path / LEASE).exists()  # released: removed
    Lease(str(tmp_path), "stage1").acquire().release()


def test_the_lease_file_names_the_holder_and_beats(tmp_path):
    with Lease(str(tmp_path), "stage1", heartbeat_s=0.1) as lease:
        first = json.loads((tmp_path / LEASE).read_text())
        time.sleep(0.5)
        later = json.loads((tmp_path / LEASE).read_text())
    assert first["pid"] == os.getpid() and first["job"] == "stage1" and first["run"] == lease.holder.run
    assert later["heartbeat_at"] > first["heartbeat_at"]


def test_one_of_many_concurrent_runs_wins(tmp_path):
    results: list = []
    barrier = threading.Barrier(8)

    def contend() -> None:
        barrier.wait()
        try:
            results.append(Lease(str(tmp_path), "stage1").acquire())
        except LeaseHeld:
            results.append(None)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [lease for lease in results if lease is not None]
    assert len(results) == 8 and len(winners) == 1
    winners[0].release()


HOLD = textwrap.dedent("""
    import sys, time
    from vlmtune.runners.lease import Lease
    Lease(sys.argv[1], "stage1").acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_killed_holder_frees_a_local_lease_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match=f"pid {holder.pid} "):
            Lease(str(tmp_path), "stage1").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert (tmp_path / LEASE).exists()  # left behind, but nobody holds its lock
        Lease(str(tmp_path), "stage1").acquire().release()
    finally:
        holder.kill()


@pytest.mark.integration
def test_s3_lease_refuses_then_frees(s3, tmp_path):
    out = f"s3://{BUCKET}/{tmp_path.name}"
    with Lease(out, "stage1"):
        assert storage.exists(storage.join(out, LEASE))
        with pytest.raises(LeaseHeld, match="job stage1"):
            Lease(out, "stage1").acquire()
    assert not storage.exists(storage.join(out, LEASE))
    Lease(out, "stage1").acquire().release()


def _foreign_lease(out: str, **changes) -> None:
    holder = Holder(**{**Holder.me("stage1").__dict__, "host": "elsewhere", "pid": 1, **changes})
    storage.write_bytes(storage.join(out, LEASE), holder.to_bytes())


@pytest.mark.integration
def test_s3_lease_of_a_silent_holder_is_taken_after_the_ttl(s3, tmp_path):
    out = f"s3://{BUCKET}/{tmp_path.name}"
    _foreign_lease(out)
    with pytest.raises(LeaseHeld, match="pid 1 on elsewhere"):
        Lease(out, "stage1", ttl_s=60, heartbeat_s=30).acquire()
    time.sleep(2.1)  # Last-Modified and Date have one-second resolution
    with Lease(out, "stage1", ttl_s=1):
        assert json.loads(storage.read_bytes(storage.join(out, LEASE)))["pid"] == os.getpid()


@pytest.mark.integration
def test_s3_lease_that_stopped_beating_is_waited_for_then_taken(s3, tmp_path):
    """A RayJob retried on a fresh cluster meets its dead predecessor's lease: it waits out the TTL, not fails."""
    out = f"s3://{BUCKET}/{tmp_path.name}"
    _foreign_lease(out)
    time.sleep(2.1)  # two heartbeats (of 0.5 s) missed, TTL (4 s) not yet passed
    started = time.monotonic()
    with Lease(out, "stage1", ttl_s=4, heartbeat_s=0.5):
        assert 1 < time.monotonic() - started < 10


@pytest.mark.integration
def test_s3_lease_still_beating_is_refused_at_once(s3, tmp_path):
    out = f"s3://{BUCKET}/{tmp_path.name}"
    with Lease(out, "stage1", heartbeat_s=0.5):
        started = time.monotonic()
        with pytest.raises(LeaseHeld):
            Lease(out, "stage1", ttl_s=60, heartbeat_s=30).acquire()
        assert time.monotonic() - started < 5


@pytest.mark.integration
def test_s3_lease_of_a_dead_process_of_this_host_is_taken_at_once(s3, tmp_path):
    out = f"s3://{BUCKET}/{tmp_path.name}"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _foreign_lease(out, host=socket.gethostname(), pid=int(dead.stdout))
    Lease(out, "stage1", ttl_s=3600).acquire().release()


@pytest.mark.integration
def test_a_run_whose_s3_lease_was_taken_over_learns_it_and_stops(s3, tmp_path):
    out = f"s3://{BUCKET}/{tmp_path.name}"
    lost = threading.Event()
    first = Lease(out, "stage1", ttl_s=1, heartbeat_s=0.3, on_lost=lambda reason: lost.set())
    first.store.acquire(first.holder, first.ttl_s, out)  # acquired, but its heartbeat never ran: it looks dead
    time.sleep(2.1)
    second = Lease(out, "stage1", ttl_s=1).acquire()
    first._thread = threading.Thread(target=first._beat, daemon=True)
    first._thread.start()
    assert lost.wait(timeout=10) and "taken over" in first.lost
    first.release()  # must not remove the new holder's lease
    assert json.loads(storage.read_bytes(storage.join(out, LEASE)))["run"] == second.holder.run
    second.release()
