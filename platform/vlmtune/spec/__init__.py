"""Job specs: pydantic models of every job kind, YAML loading, validation errors."""

from vlmtune.spec.base import API_GROUP, API_VERSION, SpecModel
from vlmtune.spec.crd import VERSION, plural_of, short_names
from vlmtune.spec.data import DataSource, DataSpec, DemoSource, Mixture, SourceFormat
from vlmtune.spec.errors import SpecError, SpecIssue
from vlmtune.spec.eval import BenchmarkName, BenchmarkSpec, EvalJob, EvalJobSpec, EvalModelSpec, GenerationSpec
from vlmtune.spec.experiment import EXPERIMENT_LABEL, Expansion, Experiment, ExperimentSpec, StudyType, expand
from vlmtune.spec.issues import issues_from_validation
from vlmtune.spec.layout import ARTIFACTS, RunLayout
from vlmtune.spec.loading import KINDS, Job, apply_overrides, load_jobs, parse_documents
from vlmtune.spec.metadata import PRIORITY_LABEL, QUEUE_LABEL, ObjectMeta
from vlmtune.spec.model import JobRef, LoraSpec, ModelSpec, Preset, Projector, TrainablePart
from vlmtune.spec.output import MlflowSpec, OutputSpec
from vlmtune.spec.resources import ResourcesSpec
from vlmtune.spec.status import TERMINAL_PHASES, Condition, JobStatus, Phase, status_model
from vlmtune.spec.training import Attention, DeepSpeedSpec, Precision, Resume, Schedule, TrainingSpec
from vlmtune.spec.tuning import TuningJob, TuningJobSpec

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "ARTIFACTS",
    "EXPERIMENT_LABEL",
    "KINDS",
    "PRIORITY_LABEL",
    "QUEUE_LABEL",
    "TERMINAL_PHASES",
    "VERSION",
    "Attention",
    "BenchmarkName",
    "BenchmarkSpec",
    "Condition",
    "DataSource",
    "DataSpec",
    "DeepSpeedSpec",
    "DemoSource",
    "EvalJob",
    "EvalJobSpec",
    "EvalModelSpec",
    "Expansion",
    "Experiment",
    "ExperimentSpec",
    "GenerationSpec",
    "Job",
    "JobRef",
    "JobStatus",
    "LoraSpec",
    "Mixture",
    "MlflowSpec",
    "ModelSpec",
    "ObjectMeta",
    "OutputSpec",
    "Phase",
    "Precision",
    "Preset",
    "Projector",
    "ResourcesSpec",
    "Resume",
    "RunLayout",
    "Schedule",
    "SourceFormat",
    "SpecError",
    "SpecIssue",
    "SpecModel",
    "StudyType",
    "TrainablePart",
    "TrainingSpec",
    "TuningJob",
    "TuningJobSpec",
    "apply_overrides",
    "expand",
    "issues_from_validation",
    "load_jobs",
    "parse_documents",
    "plural_of",
    "short_names",
    "status_model",
]
