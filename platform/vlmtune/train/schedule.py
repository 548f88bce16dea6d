"""Learning-rate schedule: linear warmup, then cosine, linear or constant; a pure step -> multiplier map.

DeepSpeed's built-in schedulers force at least two warmup steps and start at zero, which would
make `warmupRatio: 0` and very short runs behave differently from the spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from vlmtune.spec import Schedule


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    return math.ceil(warmup_ratio * total_steps)


def lr_multiplier(schedule: Schedule, warmup_ratio: float, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based)."""
    warmup = warmup_steps(warmup_ratio, total_steps)
    decay_steps = max(1, total_steps - warmup)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / decay_steps)
        if schedule is Schedule.cosine:
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if schedule is Schedule.linear:
            return 1.0 - progress
        return 1.0

    return multiplier
