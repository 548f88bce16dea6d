"""An EvalJob end to end: a tiny exported model, the five demo benchmarks, Ray Data actors, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vlmtune.cli import main
from vlmtune.eval import BENCHMARKS, score_file

pytestmark = pytest.mark.integration

DEMO = {"perTask": 1, "heldoutPerTask": 4, "imageSize": 32, "seed": 0}
LIMITS = {"mme": 2, "pope": 4, "mc": 2, "heldout": 1, "forgetting": 2}


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory) -> Path:
    from vlmtune_model import build_tiny, save_export

    built = build_tiny(seed=0)
    return save_export(built, built.model.state_dict(), tmp_path_factory.mktemp("export") / "model")


def test_eval_job_runs_end_to_end_and_its_predictions_rescore_the_same(exported_model, tmp_path, monkeypatch,
                                                                       capfd):
    monkeypatch.setenv("VLMTUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    job = {"apiVersion": "vlmtune.dev/v1alpha1", "kind": "EvalJob", "metadata": {"name": "eval-it"},
           "spec": {"model": {"pretrained": str(exported_model)},
                    "benchmarks": [{"name": name, "demo": DEMO, "limit": limit} for name, limit in LIMITS.items()],
                    "generation": {"maxNewTokens": 4, "batchSize": 8},
                    "resources": {"workers": 2},
                    "output": {"uri": str(out)}}}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(job))

    assert main(["run", str(path)]) == 0
    printed, errors = capfd.readouterr()  # file-descriptor level: Ray's C++ core writes to fd 2 directly
    assert f"eval-it: evaluated {exported_model}" in printed and "mme.perception" in printed
    assert "core_worker" not in errors  # Ray Data's actor-pool notice stays off a normal run's terminal

    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["schemaVersion", "job", "model", "generation", "headline", "benchmarks"]
    assert list(results["benchmarks"]) == list(LIMITS)
    assert set(results["headline"]) == {
        "mme.perception", "mme.cognition", "pope.f1", "pope.accuracy", "pope.yesRatio", "mc.circularAccuracy",
        "mc.singleAccuracy", "heldout.accuracy", "heldout.meanTaskAccuracy", "forgetting.meanAccuracy"}
    markdown = (out / "results.md").read_text()
    for name, entry in results["benchmarks"].items():
        items = BENCHMARKS[name].load(entry["data"], LIMITS[name])
        lines = Path(entry["predictions"]).read_text().splitlines()
        assert len(lines) == len(items) > 0
        assert set(json.loads(lines[0])) == {"question_id", "question", "prediction"}
        # What `vlmtune eval score` computes from the saved files is exactly what the job reported.
        assert score_file(name, entry["data"], entry["predictions"], LIMITS[name]) == entry["result"]
        assert entry["result"]["missingPredictions"] == 0
        assert (out / "charts" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"## {BENCHMARKS[name].title}" in markdown
    # Demo data was written in the published layouts, beside the results.
    assert (out / "benchmarks" / "mme" / "test-00000-of-00001.parquet").is_file()
    assert (out / "benchmarks" / "mmbench" / "mmbench_demo_dev_en.tsv").is_file()
