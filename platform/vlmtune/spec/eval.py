"""The `EvalJob` kind: evaluate one model on a list of benchmarks, scored by the published rules."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, model_validator

from vlmtune.spec.base import API_VERSION, JobKind, SpecModel
from vlmtune.spec.data import DemoSource
from vlmtune.spec.errors import FieldIssues
from vlmtune.spec.metadata import ObjectMeta
from vlmtune.spec.model import JobRef, Preset
from vlmtune.spec.output import OutputSpec
from vlmtune.spec.resources import ResourcesSpec


class BenchmarkName(str, Enum):
    mme = "mme"
    """MME (lmms-lab/MME Parquet): 14 yes/no subtasks; perception and cognition scores."""
    pope = "pope"
    """POPE (lmms-lab/POPE Parquet): object hallucination; accuracy, F1 and yes-ratio per split."""
    mc = "mc"
    """Multiple choice (MMBench TSV), scored with CircularEval over option rotations."""
    heldout = "heldout"
    """Held-out Vision-Flan tasks (annotation JSON + images); exact or option match, per task."""
    forgetting = "forgetting"
    """Classification sets (Parquet: set, image, label) asked as multiple choice; accuracy per set."""


class EvalModelSpec(SpecModel):
    """The model to evaluate: an upstream job's export, a complete LLaVA model, or the tiny preset."""

    preset: Preset | None = None
    """Built-in model; `tiny` (random init) needs no download."""
    from_: JobRef | None = Field(default=None, alias="from")
    """Evaluate another job's exported model (e.g. after stage 1 or stage 2)."""
    pretrained: str | None = None
    """A complete LLaVA model in Hugging Face format: hub id, s3:// URI or local path."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> EvalModelSpec:
        chosen = [name for name, value in (("preset", self.preset), ("from", self.from_),
                                           ("pretrained", self.pretrained)) if value is not None]
        if len(chosen) != 1:
            raise ValueError("name the model exactly one way: `preset: tiny`, `from: {job: NAME}` or "
                             f"`pretrained: URI` (found: {', '.join(chosen) or 'none'})")
        return self


class BenchmarkSpec(SpecModel):
    """One benchmark: its published data at a URI, or an offline demo version built from the demo suite."""

    name: BenchmarkName
    """Which benchmark (and so which reader, prompt and scorer)."""
    data: str | None = None
    """Published data, local or s3://: a Parquet file or folder (mme, pope, forgetting), an MMBench TSV (mc),
    or a Vision-Flan annotation JSON (heldout)."""
    images: str | None = None
    """heldout only: image folder of the annotation file (defaults to the file's folder)."""
    demo: DemoSource | None = None
    """Build the benchmark from the demo suite's held-out images, in the published layout."""
    limit: int | None = Field(default=None, ge=1)
    """At most this many items per group, in file order: images per MME subtask, questions per POPE split,
    questions per MMBench category (before rotation), instances per held-out task, examples per forgetting set."""

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkSpec:
        problems = []
        if (self.data is None) == (self.demo is None):
            problems.append(((), "give exactly one of `data: URI` or `demo: {}`",
                             f"e.g. `data: s3://datasets/{self.name.value}/` or `demo: {{heldoutPerTask: 16}}`"))
        if self.images is not None and (self.name is not BenchmarkName.heldout or self.data is None):
            problems.append((("images",), "only a heldout benchmark read from `data` takes an image folder",
                             "remove `images`"))
        if self.demo is not None and self.demo.tasks and self.name is not BenchmarkName.heldout:
            problems.append((("demo", "tasks"), f"{self.name.value} is built from fixed demo tasks",
                             "remove `tasks` (only the heldout benchmark selects tasks)"))
        if self.demo is not None and self.demo.heldout_per_task == 0:
            problems.append((("demo", "heldoutPerTask"), "demo benchmarks are built from held-out instances and "
                             "there would be none", "set heldoutPerTask to 1 or more"))
        if problems:
            raise FieldIssues(problems)
        return self


class GenerationSpec(SpecModel):
    """Greedy decoding settings (the reference evaluations decode greedily)."""

    max_new_tokens: int = Field(default=128, ge=1, le=4096)
    """Longest answer in tokens (LLaVA-1.5's evaluation scripts use 128)."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Questions per generate() call on each worker (left-padded)."""


class EvalJobSpec(SpecModel):
    """Which model, on which benchmarks, how to decode, where, and where the results go."""

    model: EvalModelSpec
    """The model to evaluate."""
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    """Benchmarks to run; each name at most once."""
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    """Decoding settings."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Generation workers (Ray actors, one model each) and their hardware."""
    output: OutputSpec
    """Where predictions, results.json, results.md and charts go."""
    suspend: bool | None = None
    """On a cluster, true pauses the job: its RayJob is deleted (its GPUs and queue quota freed) and no
    other is created; false (or no value) resumes it: the evaluation runs again.
    The one spec field that may change after creation; local runs ignore it."""

    @model_validator(mode="after")
    def _each_benchmark_once(self) -> EvalJobSpec:
        problems, first = [], {}
        for index, bench in enumerate(self.benchmarks):
            if bench.name in first:
                # FieldIssues paths are strings; "benchmarks[1]" renders as the loader renders list indices.
                problems.append(((f"benchmarks[{index}]", "name"),
                                 f"{bench.name.value} is already listed at benchmarks[{first[bench.name]}]",
                                 "list each benchmark once (run a second EvalJob for another data set)"))
            first.setdefault(bench.name, index)
        if problems:
            raise FieldIssues(problems)
        return self


class EvalJob(JobKind, SpecModel):
    """An evaluation of one model on a list of benchmarks, written as a Kubernetes custom resource."""

    api_version: Literal["vlmtune.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    """Always vlmtune.dev/v1alpha1."""
    kind: Literal["EvalJob"] = "EvalJob"
    """Always EvalJob."""
    metadata: ObjectMeta
    """Name, namespace and labels (the Kueue queue label picks the tenant queue)."""
    spec: EvalJobSpec
    """The evaluation itself."""
