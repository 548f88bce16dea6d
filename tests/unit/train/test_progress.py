"""Progress display: it starts at the first step rank 0 reports, so a resumed run never shows step 0."""

from __future__ import annotations

import io

from vlmtune.train import progress
from vlmtune.train.progress import _LogLines, _TerminalBar


def test_log_lines_start_at_the_first_reported_step(capsys, monkeypatch):
    clock = iter([100.0, 101.0, 112.0, 113.0, 114.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines = _LogLines("smoke", 12)
    for step, loss in [(7, 2.5), (8, 2.4), (9, 2.3), (9, 2.3), (12, 2.0)]:
        lines(step, loss)
    printed = capsys.readouterr().err.splitlines()
    # 8 comes 1 s after 7 (under the interval), 9 after 11 s, the repeated 9 is no change, 12 is the last step.
    assert printed == ["smoke: step 7/12 loss 2.500", "smoke: step 9/12 loss 2.300", "smoke: step 12/12 loss 2.000"]


def test_terminal_bar_opens_at_the_resumed_step(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    bar = _TerminalBar("smoke", 12)
    bar.close()  # nothing reported: no bar at all
    assert stream.getvalue() == ""
    bar(7, 2.5)
    assert bar.bar.n == 7 and bar.bar.total == 12
    bar(9, None)
    assert bar.bar.n == 9
    bar.close()
    assert "7/12" in stream.getvalue() and "0/12" not in stream.getvalue()
