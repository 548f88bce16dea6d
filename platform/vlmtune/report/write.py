"""Write an experiment's report into its run folder: report.md, summary.json and plots/*.png."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from vlmtune import storage
from vlmtune.report import plots
from vlmtune.report.collect import read_run
from vlmtune.report.markdown import report_markdown
from vlmtune.report.summary import summarize

REPORT_FILE, SUMMARY_FILE, PLOTS_FOLDER = "report.md", "summary.json", "plots"


def write_report(run_dir: str) -> dict[str, str]:
    """Collect the run folder's records, write the report beside them, and return the written files' URIs.

    Arms that have not finished appear with what they have (marked incomplete), so a report of a running or
    interrupted experiment is still useful.
    """
    run = read_run(run_dir)
    summary = summarize(run.manifest, run.records, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    images = {"loss.png": plots.loss_curves(summary, run.manifest, run.histories),
              **{f"{name}.png": png for name, png in plots.benchmark_bars(summary).items()},
              "yes-ratio.png": plots.yes_ratio_by_synthetic_samples(summary)}
    images = {name: png for name, png in images.items() if png is not None}
    written = {}
    for name, png in images.items():
        written[f"plot:{name.removesuffix('.png')}"] = uri = storage.join(run_dir, PLOTS_FOLDER, name)
        storage.write_bytes(uri, png)
    relative = {name.removesuffix(".png"): f"{PLOTS_FOLDER}/{name}" for name in images}
    summary["files"] = {"report": REPORT_FILE, **{f"plot:{name}": path for name, path in relative.items()}}
    written["summary"] = storage.join(run_dir, SUMMARY_FILE)
    storage.write_bytes(written["summary"], (json.dumps(summary, indent=2) + "\n").encode())
    written["report"] = storage.join(run_dir, REPORT_FILE)
    storage.write_bytes(written["report"], report_markdown(summary, relative).encode())
    return written
