"""Live progress of a run: rank 0 posts to a tiny actor, the driver draws one progress bar.

Worker stdout is not forwarded to the driver (it would interleave Ray's own logs with the bar),
so progress travels as data instead.
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
        self.state = {"step": 0, "total": 0, "loss": None}

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
        if sys.stderr.isatty():
            with tqdm(total=self.total, desc=self.description, unit="step", dynamic_ncols=True) as bar:
                self._poll(lambda step, loss: _draw(bar, step, loss))
        else:
            # In log files (RayJob logs, CI) a redrawn bar becomes a flood of lines: print step changes only.
            last = [-1, 0.0]

            def line(step: int, loss: float | None) -> None:
                now = time.monotonic()
                if step != last[0] and (step == self.total or now - last[1] >= LOG_INTERVAL_S):
                    suffix = f" loss {loss:.3f}" if loss is not None else ""
                    print(f"{self.description}: step {step}/{self.total}{suffix}", file=sys.stderr, flush=True)
                    last[:] = [step, now]

            self._poll(line)

    def _poll(self, show) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                state = ray.get(self.board.read.remote(), timeout=5)
            except Exception:  # the board dies with the cluster; progress just stops
                return
            show(state["step"], state["loss"])
            if stopping:
                return
            time.sleep(self.interval_s)


def _draw(bar: tqdm, step: int, loss: float | None) -> None:
    bar.update(max(0, step - bar.n))
    if loss is not None:
        bar.set_postfix(loss=f"{loss:.3f}")
