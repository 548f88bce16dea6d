"""Live progress of a run: rank 0 posts to a tiny actor, the driver draws one progress bar.

Worker stdout is not forwarded to the driver (it would interleave Ray's own logs with the bar),
so progress travels as data instead.
"""

from __future__ import annotations

import threading
import time

import ray
from tqdm import tqdm


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
        with tqdm(total=self.total, desc=self.description, unit="step", dynamic_ncols=True) as bar:
            while True:
                stopping = self._stop.is_set()
                try:
                    state = ray.get(self.board.read.remote(), timeout=5)
                except Exception:  # the board dies with the cluster; the bar just stops
                    return
                bar.update(max(0, state["step"] - bar.n))
                if state["loss"] is not None:
                    bar.set_postfix(loss=f"{state['loss']:.3f}")
                if stopping:
                    return
                time.sleep(self.interval_s)
