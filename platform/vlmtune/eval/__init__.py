"""Evaluation: benchmark readers for the published layouts, scorers by the reference rules, batched generation
on Ray, a judge for open-ended answers (`eval.judge`), and reports. `run_eval_job` runs an EvalJob; `score_file`
re-scores saved predictions (and a judge's saved reviews) without a model.

Heavy parts (torch, Ray) load only when generation runs, so scoring stays light.
"""

from vlmtune.eval.benchmarks import BENCHMARKS, Benchmark, score_file, score_predictions
from vlmtune.eval.items import Item, align

__all__ = ["BENCHMARKS", "Benchmark", "EvalResult", "Item", "align", "run_eval_job", "score_file", "score_predictions"]


def __getattr__(name: str):
    # The runner pulls in Ray; `vlmtune eval score` should not pay for it.
    if name in ("run_eval_job", "EvalResult"):
        from vlmtune.eval import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'vlmtune.eval' has no attribute {name!r}")
