"""Live progress of a run: rank 0 posts to a tiny actor, the driver draws one progress bar.

Worker stdout is not forwarded to the driver (it would interleave Ray's own logs with the bar),
so progress travels as data instead. Nothing is shown before rank 0's first post: a resumed run
starts at its checkpoint's step, which only the workers know, and a bar drawn earlier would say 0.
"""

from __future__ import annotations

import sys
import threading
import time

import ray
from tqdm import tqdm

LOG_INTERVAL_S = 10.0


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self) -> None:
        self.state = {"step": None, "total": 0, "loss": None}  # step None: nothing posted yet

    def post(self, step: int, total: int, loss: float | None) -> None:
        self.state = {"step": step, "total": total, "loss": loss}

    def read(self) -> dict:
        return self.state


class ProgressBar:
    """Context manager that mirrors a `ProgressBoard` into a local tqdm bar until closed."""

    def __init__(self, board, description: str, total: int, interval_s: float = 0.5):
        self.board, self.description, self.total, self.interval_s = board, description, total, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _follow(self) -> None:
        display = _TerminalBar if sys.stderr.isatty() else _LogLines
        show = display(self.description, self.total)
        try:
            self._poll(show)
        finally:
            show.close()

    def _poll(self, show) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                state = ray.get(self.board.read.remote(), timeout=5)
            except Exception:  # the board dies with the cluster; progress just stops
                return
            if state["step"] is not None:
                show(state["step"], state["loss"])
            if stopping:
                return
            time.sleep(self.interval_s)


class _TerminalBar:
    """A tqdm bar that starts at the first reported step (so a resumed run's rate counts only its own steps)."""

    def __init__(self, description: str, total: int):
        self.description, self.total = description, total
        self.bar: tqdm | None = None

    def __call__(self, step: int, loss: float | None) -> None:
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=step, desc=self.description, unit="step", dynamic_ncols=True)
        self.bar.update(max(0, step - self.bar.n))
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _LogLines:
    """In log files (RayJob logs, CI) a redrawn bar becomes a flood of lines: print step changes, at most one per
    `LOG_INTERVAL_S`, always the first and the last."""

    def __init__(self, description: str, total: int):
        self.description, self.total = description, total
        self.last_step, self.last_time = None, 0.0

    def __call__(self, step: int, loss: float | None) -> None:
        now = time.monotonic()
        first = self.last_step is None
        if step != self.last_step and (first or step == self.total or now - self.last_time >= LOG_INTERVAL_S):
            suffix = f" loss {loss:.3f}" if loss is not None else ""
            print(f"{self.description}: step {step}/{self.total}{suffix}", file=sys.stderr, flush=True)
            self.last_step, self.last_time = step, now

    def close(self) -> None:
        pass
