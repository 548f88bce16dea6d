"""`vlmtune report RUN_DIR`: the comparison report of an experiment's run folder (table, plots, JSON summary)."""

from __future__ import annotations

import json
import sys


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="comparison tables and plots of an experiment's run folder")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the experiment's spec.output.uri (local or s3://)")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    parser.add_argument(
        "--spec-json",
        metavar="JSON",
        help="the Experiment document: write RUN_DIR/experiment.json from it first (what the "
        "operator's report RayJob passes, since on a cluster the arms ran as separate jobs)",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    from vlmtune import storage
    from vlmtune.report import write_report

    run_dir = storage.absolute(args.run_dir)
    try:
        if args.spec_json:
            _write_manifest(args.spec_json, run_dir)
    except ValueError as err:  # bad JSON, or a document the Experiment model rejects
        print(f"vlmtune report: --spec-json: {err}", file=sys.stderr)
        return 1
    try:
        written = write_report(run_dir)
    except FileNotFoundError as err:
        print(f"vlmtune report: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(storage.read_bytes(written["summary"]).decode(), end="")
        return 0
    print(render(json.loads(storage.read_bytes(written["summary"])), written))
    return 0


def _write_manifest(spec_json: str, run_dir: str) -> None:
    from vlmtune import storage
    from vlmtune.spec import Experiment, expand
    from vlmtune.spec.layout import RunLayout

    experiment = Experiment.model_validate(json.loads(spec_json))
    manifest = json.dumps(expand(experiment).manifest(), indent=2) + "\n"
    storage.write_bytes(RunLayout(run_dir).experiment, manifest.encode())


def render(summary: dict, written: dict[str, str]) -> str:
    """The verdict, the paper's columns per arm, and where the report's files are (what `vlmtune run` prints after
    an experiment too)."""
    from vlmtune.report import table_markdown, verdict

    files = [f"  {name:<22} {uri}" for name, uri in written.items()]
    return (
        f"\n{summary['experiment']} ({summary['study']}):\n\n{table_markdown(summary)}\n\n"
        f"{verdict(summary)}\n\n" + "\n".join(files)
    )
