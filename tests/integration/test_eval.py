"""An EvalJob end to end: a tiny exported model, the eight demo benchmarks, Ray Data actors, a judge (a scripted
OpenAI-compatible endpoint on 127.0.0.1, and the tiny preset served inside the job), the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from judge_server import JudgeServer
from vlmtune.cli import main
from vlmtune.eval import BENCHMARKS, score_file
from vlmtune.eval.mmvet import parse_grade

pytestmark = pytest.mark.integration

DEMO = {"perTask": 1, "heldoutPerTask": 4, "imageSize": 32, "seed": 0}
LIMITS = {"mme": 2, "pope": 4, "mc": 2, "heldout": 1, "forgetting": 2, "llavabench": 1, "mmvet": 1, "mmmu": 1}


def rule_judge(body: dict, attempt: int) -> str:
    """A small judge for the tests: LLaVA-Bench pairs "10 k" (k = 9 when the answer repeats the reference's last
    word, else 2); MM-Vet grades 1.0 when the answer holds an acceptable truth, and first replies with prose to the
    shape question, so retries run."""
    user = body["messages"][-1]["content"]
    if user.startswith("[Context]"):
        reference = user.split("[Assistant 1]\n")[1].split("\n\n[End of")[0]
        answer = user.split("[Assistant 2]\n")[1].split("\n\n[End of")[0]
        return f"10 {9 if reference.rstrip('.').split()[-1].lower() in answer.lower() else 2}\nExplanation."
    question, truth, prediction, _ = user.split("\n")[-1 if "Predict the" not in user else -2].split(" | ")
    if question.startswith("What shape") and "Predict the" not in user:
        return "The prediction is wrong"
    return "1.0" if any(t.strip().lower() in prediction.lower() for t in truth.split("<OR>")) else "0.0"


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory) -> Path:
    from vlmtune_model import build_tiny, save_export

    built = build_tiny(seed=0)
    return save_export(built, built.model.state_dict(), tmp_path_factory.mktemp("export") / "model")


def _job(name: str, model: dict, limits: dict, judge: dict, out: Path, path: Path) -> Path:
    job = {
        "apiVersion": "vlmtune.dev/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "benchmarks": [{"name": bench, "demo": DEMO, "limit": limit} for bench, limit in limits.items()],
            "generation": {"maxNewTokens": 4, "batchSize": 8},
            "judge": judge,
            "resources": {"workers": 2},
            "output": {"uri": str(out)},
        },
    }
    path.write_text(yaml.safe_dump(job))
    return path


def test_eval_job_runs_end_to_end_and_its_predictions_rescore_the_same(exported_model, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("VLMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JUDGE_KEY", "sk-from-the-environment")
    out = tmp_path / "run"
    with JudgeServer(rule_judge) as server:
        judge = {"endpoint": {"url": server.url, "model": "rule-judge", "apiKeyEnv": "JUDGE_KEY"}}
        path = _job("eval-it", {"pretrained": str(exported_model)}, LIMITS, judge, out, tmp_path / "eval.yaml")
        assert main(["run", str(path)]) == 0
        asked = len(server.bodies)
        # Forced again: every judge request is answered from the cache in the output; none is paid twice.
        assert main(["run", str(path), "--force"]) == 0
        assert len(server.bodies) == asked > 0
    assert {body["authorization"] for body in server.bodies} == {"Bearer sk-from-the-environment"}
    printed, errors = capfd.readouterr()  # file-descriptor level: Ray's C++ core writes to fd 2 directly
    assert f"eval-it: evaluated {exported_model}" in printed and "mme.perception" in printed
    assert "core_worker" not in errors  # Ray Data's actor-pool notice stays off a normal run's terminal

    results = json.loads((out / "results.json").read_text())
    assert list(results) == [
        "schemaVersion",
        "job",
        "model",
        "generation",
        "headline",
        "answers",
        "chance",
        "benchmarks",
        "judge",
    ]
    assert list(results["benchmarks"]) == list(LIMITS)
    assert set(results["headline"]) - {"llavabench.relative"} == {
        "mme.perception",
        "mme.cognition",
        "pope.f1",
        "pope.accuracy",
        "pope.yesRatio",
        "mc.circularAccuracy",
        "mc.singleAccuracy",
        "heldout.accuracy",
        "heldout.meanTaskAccuracy",
        "forgetting.meanAccuracy",
        "mmvet.total",
        "mmmu.accuracy",
        "answers.emptyRate",
    }
    assert results["judge"]["judge"] == f"endpoint:{server.url}#rule-judge"
    assert results["judge"]["requestsSent"] == 0  # the forced rerun: every reply from the cache
    assert results["judge"]["fromCache"] == results["judge"]["replies"] >= asked
    assert results["chance"]["pope.accuracy"] == 0.5 and 0 < results["chance"]["mmmu.accuracy"] < 1
    markdown = (out / "results.md").read_text()
    for name, entry in results["benchmarks"].items():
        items = BENCHMARKS[name].load(entry["data"], LIMITS[name])
        lines = Path(entry["predictions"]).read_text().splitlines()
        assert len(lines) == len(items) > 0
        assert set(json.loads(lines[0])) == {"question_id", "question", "prediction"}
        # What `vlmtune eval score` computes from the saved files is exactly what the job reported.
        assert (
            score_file(name, entry["data"], entry["predictions"], LIMITS[name], entry.get("reviews")) == entry["result"]
        )
        assert entry["result"]["missingPredictions"] == 0
        assert (out / "charts" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"## {BENCHMARKS[name].title}" in markdown
        assert len((out / "scored" / f"{name}.jsonl").read_text().splitlines()) == len(items)
    # Every judged answer is kept with the judge's raw replies, and the figures follow from them by hand.
    reviews = [json.loads(line) for line in (out / "reviews" / "mmvet.jsonl").read_text().splitlines()]
    assert all(review["replies"] for review in reviews)
    assert any(review["replies"][0] == "The prediction is wrong" and len(review["replies"]) > 1 for review in reviews)
    grades = [next(g for g in map(parse_grade, review["replies"]) if g is not None) for review in reviews]
    assert results["benchmarks"]["mmvet"]["result"]["total"] == pytest.approx(sum(grades) / len(grades))
    llava = [json.loads(line) for line in (out / "reviews" / "llavabench.jsonl").read_text().splitlines()]
    model = sum(review["scores"][1] for review in llava) / len(llava)
    assert results["benchmarks"]["llavabench"]["result"]["relative"] == pytest.approx(model / 10)
    # Demo data was written in the published layouts, beside the results.
    assert (out / "benchmarks" / "mme" / "test-00000-of-00001.parquet").is_file()
    assert (out / "benchmarks" / "mmbench" / "mmbench_demo_dev_en.tsv").is_file()
    assert (out / "benchmarks" / "mmmu" / "Math" / "validation-00000-of-00001.parquet").is_file()


# -m slow: the served judge's requests, cache and parsing are unit-tested (tests/unit/eval/test_judge*.py); this
# is the whole job around it.
@pytest.mark.slow
def test_a_judge_model_served_inside_the_job(exported_model, tmp_path, monkeypatch):
    monkeypatch.setenv("VLMTUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    judge = {"model": {"preset": "tiny", "maxNewTokens": 4}}
    path = _job(
        "eval-local-judge",
        {"pretrained": str(exported_model)},
        {"llavabench": 1, "mmvet": 1},
        judge,
        out,
        tmp_path / "eval.yaml",
    )
    assert main(["run", str(path)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["judge"]["judge"] == "model:preset:tiny" and results["judge"]["requestsSent"] > 0
    llava = results["benchmarks"]["llavabench"]["result"]
    # The random-init judge's replies went through the same generation path; none parses, and that is reported.
    assert llava["unparsable"] == llava["questions"] == 3 and "llavabench.relative" not in results["headline"]
    vet = results["benchmarks"]["mmvet"]["result"]
    assert vet["ungraded"] == vet["questions"] and results["headline"]["mmvet.total"] == 0.0
    reviews = [json.loads(line) for line in (out / "reviews" / "mmvet.jsonl").read_text().splitlines()]
    assert all(len(review["replies"]) == 5 for review in reviews)  # the grader's five tries, sampled above 0
