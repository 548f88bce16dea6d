"""Status figures from a run's files: progress, latest metrics and eval headline, with files present, absent or
half-written (pure functions; the reader that fetches the files is tested in test_store.py)."""

from __future__ import annotations

import json

from vlmtune_operator.figures import Figures, RunFiles, figures, last_row, progress_of


def _rows(*rows: dict) -> bytes:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()


ROW = {
    "step": 36,
    "loss": 2.5,
    "learning_rate": 1e-4,
    "tokens_per_s": 900.0,
    "samples_per_s": 3.5,
    "samples": 64,
    "tokens": 4000,
    "skipped": 0,
    "truncated": 0,
    "grad_norm": 1.2,
}


def test_progress_and_metrics_from_the_last_row():
    tail = _rows(ROW, ROW | {"step": 37, "loss": 2.25, "total_steps": 128, "mfu": 0.41})
    found = figures("TuningJob", RunFiles(metrics_tail=tail), planned_steps=None, whole_tail=True)
    assert found.progress == "37/128 (28%)"
    assert found.metrics == {
        "step": 37,
        "loss": 2.25,
        "learningRate": 1e-4,
        "tokensPerSecond": 900.0,
        "samplesPerSecond": 3.5,
        "mfu": 0.41,
    }
    assert found.fields() == {"progress": "37/128 (28%)", "metrics": found.metrics}


def test_planned_steps_stand_in_for_a_row_without_total_steps():
    tail = _rows(ROW)
    assert figures("TuningJob", RunFiles(metrics_tail=tail), 72, True).progress == "36/72 (50%)"
    assert figures("TuningJob", RunFiles(metrics_tail=tail), None, True).progress == "step 36"  # epoch-based job


def test_absent_files_say_nothing():
    assert figures("TuningJob", RunFiles(), 100, True) == Figures()
    assert Figures().fields() == {}  # the status keeps what it had
    assert figures("EvalJob", RunFiles(), None, True).fields() == {}


def test_half_written_lines_are_skipped():
    whole = _rows(ROW | {"step": 10}, ROW | {"step": 11})
    unfinished = whole + b'{"loss": 2.0, "step": 1'  # the row being written
    assert last_row(unfinished, from_start=True)["step"] == 11
    cut = whole[5:]  # a bounded read starts mid-line: its first line is not a row
    assert last_row(cut, from_start=False)["step"] == 11
    assert last_row(_rows(ROW | {"step": 10})[5:], from_start=False) is None
    assert last_row(b'not json\n[1, 2]\n{"loss": 1}\n', from_start=True) is None


def test_odd_values_are_not_figures():
    tail = _rows(ROW | {"loss": float("nan"), "mfu": None, "tokens_per_s": "fast", "total_steps": True})
    found = figures("TuningJob", RunFiles(metrics_tail=tail), 40, True)
    assert "loss" not in found.metrics and "mfu" not in found.metrics and "tokensPerSecond" not in found.metrics
    assert found.progress == "36/40 (90%)"  # a bool is not a step count


def test_finished_run_adds_the_recorded_summary():
    record = {"phase": "Succeeded", "metrics": {"steps": 128, "samples": None, "loss.first": 9.5, "loss.final": 2.0}}
    tail = _rows(ROW | {"step": 128, "loss": 2.0, "total_steps": 128})
    found = figures("TuningJob", RunFiles(metrics_tail=tail, record=record), 128, True)
    assert found.progress == "128/128 (100%)"
    assert found.metrics["loss.final"] == 2.0 and found.metrics["steps"] == 128 and "samples" not in found.metrics
    running = {"phase": "Running", "metrics": {"loss.final": 5.0}}  # a running record has no summary yet
    assert "loss.final" not in figures("TuningJob", RunFiles(metrics_tail=tail, record=running), 128, True).metrics


def test_eval_headline_from_the_record_or_results():
    headline = {"pope.f1": 0.8, "pope.yesRatio": 0.55, "mme.perception": 1200.5}
    record = {"phase": "Succeeded", "metrics": headline}
    assert figures("EvalJob", RunFiles(record=record), None, True).results == headline
    results = {"schemaVersion": 1, "headline": headline, "benchmarks": {}}
    found = figures("EvalJob", RunFiles(record={"phase": "Running"}, results=results), None, True)
    assert found.fields() == {"results": headline}


def test_progress_text():
    assert progress_of(0, 500) == "0/500 (0%)"
    assert progress_of(499, 500) == "499/500 (99%)"  # never rounds up to a finished run
    assert progress_of(12, None) == "step 12"
