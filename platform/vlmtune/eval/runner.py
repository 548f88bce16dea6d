"""Driver side of an EvalJob: read each benchmark, answer every question on Ray, score, write the report."""

from __future__ import annotations

from dataclasses import dataclass

from vlmtune import storage
from vlmtune.data.sources import demo_suite_for
from vlmtune.eval import heldout
from vlmtune.eval.benchmarks import BENCHMARKS, score_predictions
from vlmtune.eval.demo import write_demo_benchmark
from vlmtune.eval.items import Item, dumps_jsonl, prediction_records
from vlmtune.eval.predict import predict
from vlmtune.eval.report import results_document, write_report
from vlmtune.spec import BenchmarkSpec, EvalJob, EvalModelSpec

PREDICTIONS_FOLDER, DEMO_FOLDER = "predictions", "benchmarks"


@dataclass(frozen=True)
class EvalResult:
    job: str
    output_uri: str
    model: str
    headline: dict[str, float]
    """Headline figures, e.g. {"mme.perception": 1510.7, "pope.f1": 0.859}; what a job's status shows."""
    files: dict[str, str]
    """results.json, results.md, charts and predictions by name."""


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
        data = write_demo_benchmark(name, suite, storage.join(output_uri, DEMO_FOLDER))
    if name == "heldout":
        return data, heldout.load(data, bench.limit, images=bench.images, tasks=bench.demo and bench.demo.tasks)
    return data, BENCHMARKS[name].load(data, bench.limit)


def run_eval_job(job: EvalJob, upstream_model_uri: str | None = None, show_progress: bool = False) -> EvalResult:
    """Evaluate `job`'s model on its benchmarks on the current Ray cluster (embedded or remote); blocks."""
    spec = job.spec
    output_uri = storage.absolute(spec.output.uri)
    model_uri = model_to_evaluate(spec.model, upstream_model_uri)
    loaded = {bench.name.value: load_benchmark(bench, output_uri) for bench in spec.benchmarks}
    everything = [item for _, items in loaded.values() for item in items]
    answers = iter(predict(everything, model_uri, spec.generation, spec.resources, show_progress))
    entries, files = {}, {}
    for name, (data, items) in loaded.items():
        records = prediction_records(items, [next(answers) for _ in items])
        files[f"predictions:{name}"] = storage.join(output_uri, PREDICTIONS_FOLDER, f"{name}.jsonl")
        storage.write_bytes(files[f"predictions:{name}"], dumps_jsonl(records))
        entries[name] = {"data": data, "predictions": files[f"predictions:{name}"],
                         "result": score_predictions(name, items, records)}
    model = model_uri or f"preset:{spec.model.preset.value}"
    document = results_document(job.name, model, spec.generation.to_doc(), entries)
    files.update(write_report(output_uri, document))
    return EvalResult(job.name, output_uri, model, document["headline"], files)
