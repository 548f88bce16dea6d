"""Write an experiment's report into its run folder: report.md, summary.json and plots/*.png."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from vlmtune import storage
from vlmtune.report import plots
from vlmtune.report.collect import read_run
from vlmtune.report.markdown import report_markdown
from vlmtune.report.summary import summarize
from vlmtune.spec.layout import PLOTS, REPORT, RunLayout


def write_report(run_dir: str) -> dict[str, str]:
    """Collect the run folder's records, write the report beside them, and return the written files' URIs.

    Arms that have not finished appear with what they have (marked incomplete), so a report of a running or
    interrupted experiment is still useful.
    """
    run = read_run(run_dir)
    summary = summarize(
        run.manifest,
        run.records,
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        run.evaluations,
        run.answers,
    )
    paper = [column["metric"] for column in summary["paperColumns"]]
    others = [name for name in summary["metrics"] if name not in paper and name not in ("samples", "loss.final")]
    images = {
        "paper-columns.png": plots.metric_grid(
            summary, paper, f"{summary['experiment']}: the paper's columns by arm (95% intervals over questions)"
        ),
        "other-metrics.png": plots.metric_grid(summary, others, f"{summary['experiment']}: other metrics by arm"),
        "loss.png": plots.loss_curves(summary, run.manifest, run.histories),
        "yes-ratio.png": plots.yes_ratio(summary),
    }
    images = {name: png for name, png in images.items() if png is not None}
    written = {}
    for name, png in images.items():
        written[f"plot:{name.removesuffix('.png')}"] = uri = RunLayout(run_dir).plot(name)
        storage.write_bytes(uri, png)
    relative = {name.removesuffix(".png"): f"{PLOTS}/{name}" for name in images}
    summary["files"] = {"report": REPORT, **{f"plot:{name}": path for name, path in relative.items()}}
    written["summary"] = RunLayout(run_dir).summary
    storage.write_bytes(written["summary"], (json.dumps(summary, indent=2) + "\n").encode())
    written["report"] = RunLayout(run_dir).report
    storage.write_bytes(written["report"], report_markdown(summary, relative).encode())
    return written
