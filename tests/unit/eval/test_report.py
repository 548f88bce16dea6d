"""Reports: results.json's stable keys, the markdown tables, PNG charts."""

from __future__ import annotations

import io
import json

from PIL import Image

from vlmtune.eval.pope import POPERow
from vlmtune.eval.pope import score as pope_score
from vlmtune.eval.report import chart_png, markdown_table, results_document, results_markdown, write_report


def _document():
    pope = {
        **pope_score([POPERow("random", "yes", "yes"), POPERow("random", "no", "yes"), POPERow("random", "no", "")]),
        "items": 3,
        "missingPredictions": 1,
        "unusedPredictions": 0,
        "emptyPredictions": 1,
    }
    return results_document(
        "ev",
        "s3://runs/stage1/model",
        {"maxNewTokens": 8, "batchSize": 4},
        {"pope": {"data": "d", "predictions": "p", "result": pope, "chance": {"pope.accuracy": 0.5}}},
    )


def test_results_document_keys_and_headline():
    document = _document()
    assert list(document) == [
        "schemaVersion",
        "job",
        "model",
        "generation",
        "headline",
        "answers",
        "chance",
        "benchmarks",
    ]
    # TP 1, FP 2 ("" reads as yes, as eval_pope.py reads it): precision 1/3, recall 1 -> F1 1/2.
    assert document["headline"] == {
        "pope.f1": 0.5,
        "pope.accuracy": 1 / 3,
        "pope.yesRatio": 1.0,
        "answers.emptyRate": 1 / 3,
    }
    assert document["answers"] == {"questions": 3, "empty": 1, "missing": 1, "emptyRate": 1 / 3}
    assert document["chance"] == {"pope.accuracy": 0.5}


def test_markdown_tables():
    assert markdown_table(["a", "b"], [["x", 0.5], ["y", 3]]) == "| a | b |\n|---|---|\n| x | 0.50 |\n| y | 3 |"
    text = results_markdown(_document())
    assert text.startswith("# Evaluation of `s3://runs/stage1/model` (ev)")
    assert "| random | 3 | 33.33 | 33.33 | 100.00 | 50.00 | 100.00 |" in text
    assert "1 question(s) had no prediction and count as wrong." in text and "1 answer(s) were empty." in text


def test_charts_are_pngs_single_and_grouped():
    for bars in ({"a": 0.5, "b": 1.0}, {"s1": {"x": 0.1, "y": 0.2}, "s2": {"x": 0.3, "y": 0.0}}, {}):
        image = Image.open(io.BytesIO(chart_png("t", bars, "accuracy (0-1)", (0.5, "chance"))))
        assert image.format == "PNG" and image.size[0] >= 400


def test_write_report(tmp_path):
    written = write_report(str(tmp_path), _document())
    assert set(written) == {"results", "markdown", "chart:pope"}
    assert json.loads((tmp_path / "results.json").read_text())["job"] == "ev"
    assert (tmp_path / "charts" / "pope.png").read_bytes()[:4] == b"\x89PNG"
