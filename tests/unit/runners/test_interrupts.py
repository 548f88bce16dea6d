"""SIGTERM/SIGINT on the driver: during training a request the workers act on at the next step boundary,
elsewhere (or a second signal) an immediate stop; the wait for the workers is bounded."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from vlmtune.runners.interrupts import exit_status, stop_on_signals
from vlmtune.train.stop import FitOutcome, RunInterrupted, StopRequested, StopSwitch, fit_until_stopped, hopeless


class FakeBoard:
    """Stands in for the StopBoard actor: `board.request.remote(reason)` records the request."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.request = SimpleNamespace(remote=lambda reason: self.requested.set())


def test_outside_training_a_signal_stops_at_once():
    with stop_on_signals(StopSwitch()) as switch, pytest.raises(StopRequested, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert switch.reason == "SIGTERM"


def test_during_training_the_first_signal_waits_for_a_checkpoint_and_the_second_does_not(capsys):
    with stop_on_signals(StopSwitch()) as switch, switch.waiting_for_a_step():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert switch.requested and switch.reason == "SIGINT"
        assert "checkpointing at the next step boundary" in capsys.readouterr().err
        with pytest.raises(StopRequested):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_handlers_are_restored_afterwards():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(StopSwitch()):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_request_is_forwarded_to_the_workers_and_their_result_returned():
    switch, board = StopSwitch(), FakeBoard()

    def fit():
        assert board.requested.wait(timeout=10), "the request never reached the board"
        return "stopped at a step boundary"

    threading.Timer(0.3, switch.request, args=("SIGTERM",)).start()
    assert fit_until_stopped(fit, switch, board) == FitOutcome(result="stopped at a step boundary")


def test_the_wait_for_the_workers_is_bounded():
    switch, board = StopSwitch(), FakeBoard()
    switch.request("SIGTERM")
    started = time.monotonic()
    assert fit_until_stopped(lambda: time.sleep(60), switch, board, grace_s=0.5) == FitOutcome(gave_up=True)
    assert time.monotonic() - started < 5


def test_a_lost_lease_stops_without_waiting():
    switch = StopSwitch()
    threading.Timer(0.2, switch.abandon, args=("lost the lease",)).start()
    started = time.monotonic()
    assert fit_until_stopped(lambda: time.sleep(60), switch, FakeBoard(), grace_s=30).gave_up
    assert time.monotonic() - started < 5


def test_a_hopeless_worker_error_ends_the_wait_at_once():
    reported = []
    started = time.monotonic()
    outcome = fit_until_stopped(
        lambda: time.sleep(60),
        StopSwitch(),
        FakeBoard(),
        failure=lambda: reported[0] if reported else reported.append("disk full"),
    )
    assert outcome == FitOutcome(failure="disk full") and time.monotonic() - started < 5


def test_which_errors_are_hopeless():
    import errno

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as full:
            raise RuntimeError("report failed") from full
    except RuntimeError as wrapped:
        assert hopeless(wrapped) == "OSError: [Errno 28] No space left on device"
    assert hopeless(OSError("[Errno 28] Error writing bytes to file. Detail: No space left on device")) is not None
    assert hopeless(ConnectionResetError(errno.ECONNRESET, "reset")) is None and hopeless(ValueError("x")) is None


def test_errors_of_fit_reach_the_caller():
    def fit():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fit_until_stopped(fit, StopSwitch(), FakeBoard())


def test_exit_status_is_the_shells():
    assert exit_status("SIGINT") == 130 and exit_status("SIGTERM") == 143 and exit_status("lost the lease") == 1


def test_interruptions_pickle_for_ray():
    import pickle

    error = pickle.loads(pickle.dumps(RunInterrupted("smoke", "SIGTERM", 6, True)))
    assert str(error) == "smoke: stopped by SIGTERM after checkpointing step 6" and error.step == 6
