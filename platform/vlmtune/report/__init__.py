"""Comparison reports of an experiment's run folder: one markdown table (arm x metric), PNG plots, a JSON summary.

`write_report(RUN_DIR)` is what `vlmtune report` and the end of `vlmtune run` call; the pieces below it are pure.
"""

from vlmtune.report.collect import RunFiles, read_run
from vlmtune.report.markdown import report_markdown, table_markdown, verdict
from vlmtune.report.summary import GOALS, best_arms, summarize
from vlmtune.report.write import write_report

__all__ = [
    "GOALS",
    "RunFiles",
    "best_arms",
    "read_run",
    "report_markdown",
    "summarize",
    "table_markdown",
    "verdict",
    "write_report",
]
