"""The run folder: where every job keeps what it writes under its `spec.output.uri` (a local folder or s3://).

One type for every writer and reader: the trainer, the evaluator, the pipeline's records, the report, and the
operator (which reads the same files through its store reader). It lives with the specs because the operator
depends on `vlmtune.spec` alone.

```
<output>/lease.json                         who writes this output now (one writer per output)
<output>/job.json                           the job's record: phase, spec hash, artifacts, headline metrics
<output>/metrics.jsonl                      training: one JSON row per report, appended, never rewritten
<output>/data_report.json                   training: samples, steps, records skipped while reading
<output>/model/                             training: the exported model (safetensors, processor, chat template)
<output>/checkpoints/checkpoint-NNNNNN/     training: every rank's files, then complete.json, written last
<output>/samples/                           training: the sample ledger (`recordSamples`)
<output>/tensorboard/                       training: event files
<output>/data/                              training: raw sources prepared for a remote output
<output>/results.json, results.md, charts/  evaluation: scores, their table and charts
<output>/predictions/, reviews/, scored/    evaluation: answers, judge reviews, per-question scores
<output>/judge/                             evaluation: the judge's reply cache
<output>/benchmarks/                        evaluation: generated demo benchmarks
<output>/experiment.json                    experiment: its expansion into jobs
<output>/report.md, summary.json, plots/    experiment: the comparison report
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEASE = "lease.json"
RECORD = "job.json"
METRICS = "metrics.jsonl"
DATA_REPORT = "data_report.json"
MODEL = "model"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_RECORD = "complete.json"
"""A checkpoint's completion record: every file with its size and sha256. Written last; without it, or when a
file differs from it, the checkpoint does not count."""
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"
"""Ray Train's own record of a run's checkpoints, in the checkpoints folder (`train.ray_internals`)."""
SAMPLES = "samples"
TENSORBOARD = "tensorboard"
PREPARED_DATA = "data"
RESULTS = "results.json"
RESULTS_TABLE = "results.md"
CHARTS = "charts"
PREDICTIONS = "predictions"
REVIEWS = "reviews"
SCORED = "scored"
JUDGE_CACHE = "judge"
BENCHMARKS = "benchmarks"
EXPERIMENT = "experiment.json"
REPORT = "report.md"
SUMMARY = "summary.json"
PLOTS = "plots"

ARTIFACTS: dict[str, dict[str, str]] = {
    "TuningJob": {"model": MODEL, "checkpoints": CHECKPOINTS, "metrics": METRICS},
    "EvalJob": {"metrics": RESULTS},
}
"""Each kind's artifacts (name -> path in its run folder), as job statuses list them (`JobStatus.artifacts`) and
job records start from; only kinds with a `model` can be chained from."""

_CHECKPOINT = re.compile(rf"^{CHECKPOINT_PREFIX}(\d{{6,}})$")


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint folder's name, or None when the name is not a checkpoint's."""
    found = _CHECKPOINT.match(name)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class RunLayout:
    """The URIs of one run folder's files. `root` is the job's output URI (local path or s3://)."""

    root: str

    def join(self, *names: str) -> str:
        return "/".join([self.root.rstrip("/"), *(name.strip("/") for name in names)])

    @property
    def lease(self) -> str:
        return self.join(LEASE)

    @property
    def record(self) -> str:
        return self.join(RECORD)

    @property
    def metrics(self) -> str:
        return self.join(METRICS)

    @property
    def data_report(self) -> str:
        return self.join(DATA_REPORT)

    @property
    def model(self) -> str:
        return self.join(MODEL)

    @property
    def checkpoints(self) -> str:
        return self.join(CHECKPOINTS)

    def checkpoint(self, step: int) -> str:
        return self.join(CHECKPOINTS, checkpoint_name(step))

    @property
    def samples(self) -> str:
        return self.join(SAMPLES)

    @property
    def tensorboard(self) -> str:
        return self.join(TENSORBOARD)

    @property
    def prepared_data(self) -> str:
        return self.join(PREPARED_DATA)

    @property
    def results(self) -> str:
        return self.join(RESULTS)

    @property
    def results_table(self) -> str:
        return self.join(RESULTS_TABLE)

    def chart(self, name: str) -> str:
        return self.join(CHARTS, f"{name}.png")

    def predictions(self, benchmark: str) -> str:
        return self.join(PREDICTIONS, f"{benchmark}.jsonl")

    def reviews(self, benchmark: str) -> str:
        return self.join(REVIEWS, f"{benchmark}.jsonl")

    def scored(self, benchmark: str) -> str:
        return self.join(SCORED, f"{benchmark}.jsonl")

    @property
    def judge_cache(self) -> str:
        return self.join(JUDGE_CACHE)

    @property
    def benchmarks(self) -> str:
        return self.join(BENCHMARKS)

    @property
    def experiment(self) -> str:
        return self.join(EXPERIMENT)

    @property
    def report(self) -> str:
        return self.join(REPORT)

    @property
    def summary(self) -> str:
        return self.join(SUMMARY)

    def plot(self, name: str) -> str:
        return self.join(PLOTS, name)

    def artifacts(self, kind: str, with_model: bool = True) -> dict[str, str]:
        """The artifact URIs of a job of `kind` in this folder; `with_model=False` leaves the model out (it counts
        only once the job succeeded)."""
        return {
            name: self.join(path) for name, path in ARTIFACTS.get(kind, {}).items() if with_model or name != "model"
        }
