"""SIGTERM and SIGINT on the driver (a head pod evicted, `ray job stop`, Ctrl-C) become a stop request.

The first signal during training asks the workers to checkpoint at the next step boundary and end
(`train.stop`); anywhere else, or at a second signal, the run stops at once (`StopRequested`). Either way
the job's record says `Interrupted` and rerunning the same command resumes it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vlmtune.train.stop import StopRequested, StopSwitch

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(switch: StopSwitch) -> Iterator[StopSwitch]:
    """Route SIGINT and SIGTERM to `switch` inside the block (the main thread's handlers come back after)."""
    if threading.current_thread() is not threading.main_thread():
        yield switch
        return
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    install(switch)
    try:
        yield switch
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def install(switch: StopSwitch) -> None:
    """Point SIGINT and SIGTERM at `switch`: again after `ray.init`, which sets a SIGTERM handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(number: int, frame) -> None:
        name = signal.Signals(number).name
        again = switch.requested
        switch.request(name)
        if again or not switch.graceful:
            raise StopRequested(name)
        print(
            f"{name}: checkpointing at the next step boundary, then stopping "
            f"({'Ctrl-C' if number == signal.SIGINT else 'the same signal'} again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    for number in SIGNALS:
        signal.signal(number, handle)


def exit_status(reason: str | None) -> int:
    """128 + the signal's number, as shells report a process ended by it; 1 for other reasons."""
    try:
        return 128 + signal.Signals[reason].value
    except KeyError:
        return 1
