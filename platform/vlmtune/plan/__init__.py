"""`vlmtune plan`: per-GPU memory, fit verdict, steps, tokens, FLOPs and GPU-hours before launch.

Pure functions of the job spec and a GPU type; nothing is downloaded.
"""

from vlmtune.plan.budget import DEFAULT_MFU, Budget
from vlmtune.plan.catalog import PlanError
from vlmtune.plan.fit import Change, Suggestion
from vlmtune.plan.gpus import GPUS, GpuType, gpu_type
from vlmtune.plan.memory import Setup, model_state_bytes
from vlmtune.plan.planner import Plan, gpu_for, plan_job
from vlmtune.plan.render import render

__all__ = [
    "DEFAULT_MFU",
    "GPUS",
    "Budget",
    "Change",
    "GpuType",
    "Plan",
    "PlanError",
    "Setup",
    "Suggestion",
    "gpu_for",
    "gpu_type",
    "model_state_bytes",
    "plan_job",
    "render",
]
