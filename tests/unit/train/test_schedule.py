"""Learning-rate multipliers: linear warmup, then cosine / linear / constant."""

from __future__ import annotations

import math

import pytest

from vlmtune.spec import Schedule
from vlmtune.train.schedule import lr_multiplier


def test_cosine_with_warmup():
    f = lr_multiplier(Schedule.cosine, 0.1, 100)  # 10 warmup steps, 90 decay steps
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.0)


def test_no_warmup_starts_at_peak():
    assert lr_multiplier(Schedule.cosine, 0.0, 10)(0) == pytest.approx(1.0)


def test_linear_and_constant():
    assert lr_multiplier(Schedule.linear, 0.0, 10)(5) == pytest.approx(0.5)
    assert lr_multiplier(Schedule.constant, 0.5, 10)(7) == 1.0
