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
    """Classification sets (Parquet: set, image, label); accuracy per set and their mean, the paper's CF."""
    llavabench = "llavabench"
    """LLaVA-Bench (in the wild), LLaVA's folder layout; a judge scores each answer against GPT-4's reference,
    relative score per category. Needs spec.judge."""
    mmvet = "mmvet"
    """MM-Vet (mm-vet.json + images); a judge grades each answer 0.0-1.0, totals per capability. Needs
    spec.judge."""
    mmmu = "mmmu"
    """MMMU validation split (MMMU/MMMU Parquet, one folder per subject), MMMU's own answer parsing; accuracy per
    subject and discipline."""


JUDGED = frozenset({BenchmarkName.llavabench, BenchmarkName.mmvet})
"""Benchmarks whose answers a judge model scores."""
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


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
        chosen = [
            name
            for name, value in (("preset", self.preset), ("from", self.from_), ("pretrained", self.pretrained))
            if value is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "name the model exactly one way: `preset: tiny`, `from: {job: NAME}` or "
                f"`pretrained: URI` (found: {', '.join(chosen) or 'none'})"
            )
        return self


class BenchmarkSpec(SpecModel):
    """One benchmark: its published data at a URI, or an offline demo version built from the demo suite."""

    name: BenchmarkName
    """Which benchmark (and so which reader, prompt and scorer)."""
    data: str | None = None
    """Published data, local or s3://: a Parquet file or split folder (mme, pope, forgetting), an MMBench TSV
    (mc), a Vision-Flan annotation JSON (heldout), LLaVA-Bench's folder (questions.jsonl, context.jsonl,
    answers_gpt4.jsonl, images/), MM-Vet's folder (mm-vet.json, images/), or the MMMU/MMMU release (mmmu)."""
    images: str | None = None
    """heldout only: image folder of the annotation file (defaults to the file's folder)."""
    demo: DemoSource | None = None
    """Build the benchmark from the demo suite's held-out images, in the published layout."""
    limit: int | None = Field(default=None, ge=1)
    """At most this many items per group, in file order: images per MME subtask, questions per POPE split,
    questions per MMBench category (before rotation), instances per held-out task, examples per forgetting set,
    questions per LLaVA-Bench category, MM-Vet capability set or MMMU subject."""
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    """Longest answer for this benchmark (default: spec.generation.maxNewTokens). LLaVA-1.5's open-ended runs
    (LLaVA-Bench, MM-Vet) allow 1024."""

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkSpec:
        problems = []
        if (self.data is None) == (self.demo is None):
            problems.append(
                (
                    (),
                    "give exactly one of `data: URI` or `demo: {}`",
                    f"e.g. `data: s3://datasets/{self.name.value}/` or `demo: {{heldoutPerTask: 16}}`",
                )
            )
        if self.images is not None and (self.name is not BenchmarkName.heldout or self.data is None):
            problems.append(
                (("images",), "only a heldout benchmark read from `data` takes an image folder", "remove `images`")
            )
        if self.demo is not None and self.demo.tasks and self.name is not BenchmarkName.heldout:
            problems.append(
                (
                    ("demo", "tasks"),
                    f"{self.name.value} is built from fixed demo tasks",
                    "remove `tasks` (only the heldout benchmark selects tasks)",
                )
            )
        if self.demo is not None and self.demo.heldout_per_task == 0:
            problems.append(
                (
                    ("demo", "heldoutPerTask"),
                    "demo benchmarks are built from held-out instances and there would be none",
                    "set heldoutPerTask to 1 or more",
                )
            )
        if problems:
            raise FieldIssues(problems)
        return self


class SecretKeyRef(SpecModel):
    """A key of a Kubernetes Secret in the job's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Secret's name."""
    key: str = Field(min_length=1, max_length=253)
    """The key inside the Secret."""


class JudgeEndpointSpec(SpecModel):
    """An OpenAI-compatible chat-completions API: OpenAI itself (GPT-4, as the paper), or a self-hosted server
    (vLLM, TGI, llama.cpp, ...). The key never appears in the spec: it is read from an environment variable."""

    url: str = Field(pattern=r"^https?://\S+$")
    """Base URL; requests go to <url>/chat/completions, e.g. https://api.openai.com/v1 or
    http://judge.team-vision.svc:8000/v1."""
    model: str = Field(min_length=1)
    """Model name the API knows, e.g. gpt-4-0613 (MM-Vet's grader default; LLaVA-1.5 used gpt-4-0314)."""
    api_key_env: str | None = Field(default="OPENAI_API_KEY", pattern=_ENV_NAME)
    """Environment variable holding the API key (sent as a bearer token); null for servers without auth."""
    api_key_secret: SecretKeyRef | None = None
    """On Kubernetes: the Secret key to expose to the Ray pods as `apiKeyEnv`."""


class JudgeModelSpec(SpecModel):
    """A judge model vlmtune serves itself inside the Ray job, through the evaluated model's generation path."""

    preset: Preset | None = None
    """`tiny`: a random-init tiny model, for offline plumbing checks only (its replies do not parse)."""
    pretrained: str | None = None
    """An exported LLaVA-format model (hub id, s3:// URI or local path), asked text-only."""
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    """Caps each reply below the benchmark's own limit (LLaVA-Bench's review asks for up to 1024 tokens)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> JudgeModelSpec:
        if (self.preset is None) == (self.pretrained is None):
            raise ValueError("name the judge model exactly one way: `preset: tiny` or `pretrained: URI`")
        return self


class JudgeSpec(SpecModel):
    """Who scores open-ended answers (LLaVA-Bench, MM-Vet): an API endpoint or a model served in the job.

    Requests are batched, rate-limited and retried with backoff; every reply is cached in the job's output by
    (request, judge), so a rerun or a resumed job never asks the same question twice.
    """

    endpoint: JudgeEndpointSpec | None = None
    """An OpenAI-compatible API."""
    model: JudgeModelSpec | None = None
    """A model served inside the Ray job."""
    requests_per_minute: float = Field(default=60.0, gt=0, le=100_000)
    """Endpoint only: request starts per minute, across all concurrent requests."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Endpoint only: requests in flight at once."""
    max_retries: int = Field(default=6, ge=0, le=50)
    """Endpoint only: retries of a request that timed out or met 429/5xx, with exponential backoff."""
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """Endpoint only: limit for one request."""

    @model_validator(mode="after")
    def _exactly_one(self) -> JudgeSpec:
        if (self.endpoint is None) == (self.model is None):
            raise ValueError("give exactly one of `endpoint: {url, model}` or `model: {pretrained: URI}`")
        return self

    def identity(self) -> str:
        """What the reply cache keys on besides the request: the same prompt to another judge is another entry."""
        if self.endpoint is not None:
            return f"endpoint:{self.endpoint.url.rstrip('/')}#{self.endpoint.model}"
        return f"model:{self.model.pretrained or f'preset:{self.model.preset.value}'}"

    def secret_env(self) -> list[dict]:
        """Container env entries that expose the API key's Secret (what the operator adds to the Ray pods)."""
        endpoint = self.endpoint
        if endpoint is None or endpoint.api_key_secret is None or endpoint.api_key_env is None:
            return []
        ref = endpoint.api_key_secret
        return [{"name": endpoint.api_key_env, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


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
    judge: JudgeSpec | None = None
    """Who scores open-ended answers; required by llavabench and mmvet."""
    output: OutputSpec
    """Where predictions, judge reviews and their cache, results.json, results.md and charts go."""
    suspend: bool | None = None
    """On a cluster, true pauses the job: its RayJob is deleted (its GPUs and queue quota freed) and no
    other is created; false (or no value) resumes it: the evaluation runs again.
    The one spec field that may change after creation; local runs ignore it."""

    @model_validator(mode="after")
    def _each_benchmark_once(self) -> EvalJobSpec:
        problems = benchmark_problems(self.benchmarks, self.judge)
        if problems:
            raise FieldIssues(problems)
        return self


def benchmark_problems(benchmarks: list[BenchmarkSpec], judge: JudgeSpec | None) -> list[tuple]:
    """Benchmarks listed twice, and judged benchmarks without a judge (paths relative to the spec)."""
    problems, first = [], {}
    for index, bench in enumerate(benchmarks):
        if bench.name in first:
            # FieldIssues paths are strings; "benchmarks[1]" renders as the loader renders list indices.
            problems.append(
                (
                    (f"benchmarks[{index}]", "name"),
                    f"{bench.name.value} is already listed at benchmarks[{first[bench.name]}]",
                    "list each benchmark once (run a second EvalJob for another data set)",
                )
            )
        first.setdefault(bench.name, index)
        if bench.name in JUDGED and judge is None:
            problems.append(
                (
                    (f"benchmarks[{index}]", "name"),
                    f"{bench.name.value} is scored by a judge model",
                    "add `judge: {endpoint: {url: https://api.openai.com/v1, model: gpt-4-0613}}` "
                    "(key in $OPENAI_API_KEY) or `judge: {model: {pretrained: URI}}` beside benchmarks",
                )
            )
    return problems


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
