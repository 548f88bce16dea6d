"""Driver side of an EvalJob: read each benchmark, answer every question on Ray, judge what needs a judge, score,
write the report."""

from __future__ import annotations

from dataclasses import dataclass

from vlmtune import storage
from vlmtune.data.sources import demo_suite_for
from vlmtune.eval import heldout
from vlmtune.eval.benchmarks import BENCHMARKS, score_predictions
from vlmtune.eval.demo import write_demo_benchmark
from vlmtune.eval.items import Item, Question, dumps_jsonl, item_record, prediction_records
from vlmtune.eval.predict import predict
from vlmtune.eval.report import results_document, write_report
from vlmtune.eval.reviews import review_records
from vlmtune.spec import BenchmarkSpec, EvalJob, EvalModelSpec
from vlmtune.spec.layout import RunLayout


@dataclass(frozen=True)
class EvalResult:
    job: str
    output_uri: str
    model: str
    headline: dict[str, float]
    """Headline figures, e.g. {"mme.perception": 1510.7, "pope.f1": 0.859}; what a job's status shows."""
    files: dict[str, str]
    """results.json, results.md, charts, predictions and reviews by name."""


def model_to_evaluate(model: EvalModelSpec, upstream_model_uri: str | None) -> str | None:
    """The model URI to load; None stands for the tiny preset.

    Raises:
        ValueError: `from: {job}` whose upstream has no exported model yet.
    """
    if model.from_ is not None:
        if upstream_model_uri is None:
            raise ValueError(f"spec.model.from.job: {model.from_.job!r} has no exported model yet")
        return upstream_model_uri
    return model.pretrained


def load_benchmark(bench: BenchmarkSpec, output_uri: str) -> tuple[str, list[Item]]:
    """(data URI, items) of one benchmark; a demo benchmark is written under the job's output first."""
    name = bench.name.value
    data = bench.data
    if bench.demo is not None:
        suite = demo_suite_for(bench.demo.model_copy(update={"tasks": None}))  # the training job's suite and cache
        data = write_demo_benchmark(name, suite, RunLayout(output_uri).benchmarks)
    if name == "heldout":
        return data, heldout.load(data, bench.limit, images=bench.images, tasks=bench.demo and bench.demo.tasks)
    return data, BENCHMARKS[name].load(data, bench.limit)


def _questions(bench: BenchmarkSpec, items: list[Item]) -> list[Question]:
    return [Question(item.prompt, item.image, max_new_tokens=bench.max_new_tokens) for item in items]


def run_eval_job(job: EvalJob, upstream_model_uri: str | None = None, show_progress: bool = False) -> EvalResult:
    """Evaluate `job`'s model on its benchmarks on the current Ray cluster (embedded or remote); blocks.

    Raises:
        JudgeError: the judge failed for good (its replies so far are cached: a rerun asks only for the rest).
    """
    spec = job.spec
    output_uri = storage.absolute(spec.output.uri)
    model_uri = model_to_evaluate(spec.model, upstream_model_uri)
    loaded = {bench.name.value: (bench, *load_benchmark(bench, output_uri)) for bench in spec.benchmarks}
    questions = [question for bench, _, items in loaded.values() for question in _questions(bench, items)]
    answers = iter(predict(questions, model_uri, spec.generation, spec.resources, show_progress))
    judging = _Judging(job, output_uri, show_progress)
    entries, files = {}, {}
    for name, (_, data, items) in loaded.items():
        predictions = [next(answers) for _ in items]
        entry, written = _score(name, data, items, predictions, output_uri, judging)
        entries[name] = entry
        files.update(written)
    model = model_uri or f"preset:{spec.model.preset.value}"
    document = results_document(job.name, model, spec.generation.to_doc(), entries, judging.summary())
    files.update(write_report(output_uri, document))
    return EvalResult(job.name, output_uri, model, document["headline"], files)


def _score(
    name: str, data: str, items: list[Item], predictions: list[str], output_uri: str, judging: _Judging
) -> tuple[dict, dict[str, str]]:
    """Write a benchmark's predictions (and reviews), score them, and write what the report re-scores."""
    bench = BENCHMARKS[name]
    records = prediction_records(items, predictions)
    layout = RunLayout(output_uri)
    files = {f"predictions:{name}": layout.predictions(name)}
    storage.write_bytes(files[f"predictions:{name}"], dumps_jsonl(records))
    reviews = None
    if bench.judged:
        reviews = judging.review(name, items, predictions)
        files[f"reviews:{name}"] = layout.reviews(name)
        storage.write_bytes(files[f"reviews:{name}"], dumps_jsonl(review_records(name, items, predictions, reviews)))
    result = score_predictions(name, items, records, files[f"predictions:{name}"], reviews)
    files[f"scored:{name}"] = layout.scored(name)
    scored = [
        {
            "item": item_record(item),
            "prediction": prediction,
            **({"replies": reviews[index]} if reviews is not None else {}),
        }
        for index, (item, prediction) in enumerate(zip(items, predictions))
    ]
    storage.write_bytes(files[f"scored:{name}"], dumps_jsonl(scored))
    entry = {"data": data, "predictions": files[f"predictions:{name}"], "result": result, "chance": bench.chance(items)}
    if reviews is not None:
        entry["reviews"] = files[f"reviews:{name}"]
    return entry, files


class _Judging:
    """The job's judge and reply cache, built on first use; counts what was asked and what came from the cache."""

    def __init__(self, job: EvalJob, output_uri: str, show_progress: bool):
        self.job, self.output_uri, self.show_progress = job, output_uri, show_progress
        self.judge = self.cache = None
        self.asked = self.sent = self.cached = 0

    def review(self, name: str, items: list[Item], predictions: list[str]) -> list[list[str]]:
        from vlmtune.eval.judge import build_judge, cache_for, review_all

        spec = self.job.spec
        if self.judge is None:
            self.judge = build_judge(spec.judge, spec.generation, spec.resources, self.show_progress)
            self.cache = cache_for(self.output_uri)
        reviews, sent, cached = review_all(BENCHMARKS[name].next_request, items, predictions, self.judge, self.cache)
        self.asked += sum(len(replies) for replies in reviews)
        self.sent, self.cached = self.sent + sent, self.cached + cached
        return reviews

    def summary(self) -> dict | None:
        if self.judge is None:
            return None
        return {
            "judge": self.judge.identity,
            "replies": self.asked,
            "requestsSent": self.sent,
            "fromCache": self.cached,
            "damagedCacheLines": self.cache.damaged_lines,
        }
