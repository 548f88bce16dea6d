"""Job specs: pydantic models of every job kind, YAML loading, validation errors."""

from vlmtune.spec.base import API_GROUP, API_VERSION, SpecModel
from vlmtune.spec.data import DataSource, DataSpec, DemoSource, Mixture, SourceFormat
from vlmtune.spec.errors import SpecError, SpecIssue
from vlmtune.spec.eval import BenchmarkName, BenchmarkSpec, EvalJob, EvalJobSpec, EvalModelSpec, GenerationSpec
from vlmtune.spec.experiment import Expansion, Experiment, ExperimentSpec, StudyType, expand
from vlmtune.spec.loading import KINDS, Job, apply_overrides, load_jobs, parse_documents
from vlmtune.spec.metadata import ObjectMeta
from vlmtune.spec.model import JobRef, LoraSpec, ModelSpec, Preset, Projector, TrainablePart
from vlmtune.spec.output import MlflowSpec, OutputSpec
from vlmtune.spec.resources import ResourcesSpec
from vlmtune.spec.training import Attention, DeepSpeedSpec, Precision, Resume, Schedule, TrainingSpec
from vlmtune.spec.tuning import TuningJob, TuningJobSpec

__all__ = [
    "API_GROUP", "API_VERSION", "KINDS", "Attention", "BenchmarkName", "BenchmarkSpec", "DataSource", "DataSpec",
    "DeepSpeedSpec", "DemoSource", "EvalJob", "EvalJobSpec", "EvalModelSpec", "Expansion", "Experiment",
    "ExperimentSpec", "GenerationSpec", "Job", "JobRef", "LoraSpec", "Mixture", "MlflowSpec", "ModelSpec", "ObjectMeta",
    "OutputSpec", "Precision", "Preset", "Projector",
    "ResourcesSpec", "Resume", "Schedule", "SourceFormat", "SpecError", "SpecIssue", "SpecModel", "StudyType",
    "TrainablePart", "TrainingSpec", "TuningJob", "TuningJobSpec", "apply_overrides", "expand", "load_jobs",
    "parse_documents",
]
