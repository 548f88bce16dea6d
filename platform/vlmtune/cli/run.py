"""`vlmtune run FILE`: run every job in FILE on embedded Ray (or the cluster RAY_ADDRESS names).

SIGTERM or Ctrl-C checkpoints at the next step boundary and exits with 128 + the signal's number, printing
one line that says how to resume; another run holding an output's lease is named in one line (exit 1).
"""

from __future__ import annotations

import json
import sys
import time

from vlmtune.cli.options import add_overrides
from vlmtune.spec import SpecError, load_jobs, parse_documents


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="run job files locally (embedded Ray) or on the cluster in RAY_ADDRESS")
    parser.add_argument("file", nargs="?", metavar="FILE", help="job file (multi-document YAML)")
    add_overrides(parser, "override a field in every job, e.g. --set spec.training.maxSteps=10")
    parser.add_argument(
        "--spec-json",
        metavar="JSON",
        help="job document(s) as JSON instead of FILE (what RayJobs and `vlmtune submit` pass)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rerun every job from scratch, even those finished with the same spec"
    )
    parser.add_argument("--verbose", action="store_true", help="stream Ray worker logs to the console")
    parser.set_defaults(handler=run)


def run(args) -> int:
    if bool(args.file) == bool(args.spec_json):
        print("vlmtune run: give exactly one of FILE or --spec-json", file=sys.stderr)
        return 2
    try:
        jobs = (
            load_jobs([args.file], args.overrides)
            if args.file
            else parse_documents(_as_yaml_stream(args.spec_json), "--spec-json", args.overrides)
        )
    except SpecError as err:
        print(err, file=sys.stderr)
        return 1
    # Heavy imports only once the spec is valid.
    from vlmtune.data.errors import DataError
    from vlmtune.runners.interrupts import exit_status, stop_on_signals
    from vlmtune.runners.lease import LeaseHeld
    from vlmtune.runners.pipeline import error_line, run_pipeline
    from vlmtune.train.stop import RunFailed, RunInterrupted, StopRequested, StopSwitch

    started = time.perf_counter()
    try:
        with stop_on_signals(StopSwitch()) as stop:
            result = run_pipeline(
                jobs, force=args.force, verbose=args.verbose, on_step=_announce, on_outcome=_print_outcome, stop=stop
            )
    except (RunInterrupted, StopRequested) as interrupted:
        print(_interrupted_line(interrupted, args), file=sys.stderr, flush=True)
        return exit_status(stop.reason)
    except (LeaseHeld, RunFailed, DataError) as ended:  # a bad shard or annotation file: one line, no traceback
        print(f"vlmtune run: {ended}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - one line here; --verbose shows the whole error
        if args.verbose:
            raise
        print(
            f"vlmtune run: failed: {error_line(error)}; rerun to resume from the newest complete checkpoint "
            "(--verbose shows the whole error and the workers' logs)",
            file=sys.stderr,
        )
        return 1
    for written in result.reports.values():
        print(_report_summary(written))
    ran = sum(outcome.result is not None for outcome in result.outcomes)
    print(f"done in {time.perf_counter() - started:.0f}s ({ran} ran, {len(result.outcomes) - ran} skipped)")
    return 0


def _interrupted_line(interrupted, args) -> str:
    """One line: what stopped, where it can resume, and the command that resumes it."""
    again = f"vlmtune run {args.file}" if args.file else "the same `vlmtune run --spec-json ...`"
    if getattr(interrupted, "job", None):
        return f"interrupted: {interrupted}; rerun to resume: {again}"
    return f"interrupted by {interrupted.reason}; rerun to resume: {again}"


def _announce(step) -> None:
    if step.action != "skip":
        print(f"{step.job.name}: running ({step.reason})", flush=True)


def _print_outcome(outcome) -> None:
    if outcome.result is None:
        print(f"{outcome.step.job.name}: skipped, {outcome.step.reason}", flush=True)
    else:
        print(summary(outcome.result), flush=True)


def _report_summary(written: dict[str, str]) -> str:
    from vlmtune import storage
    from vlmtune.cli.report import render

    return render(json.loads(storage.read_bytes(written["summary"])), written)


def summary(result) -> str:
    from vlmtune.eval import EvalResult

    if isinstance(result, EvalResult):
        from vlmtune.cli.eval import summary as eval_summary

        return eval_summary(result)
    history = result.history
    lines = [f"\n{result.job}: {result.steps} steps, {result.data_report['samples']} samples per epoch"]
    if history:
        first, last = history[0], history[-1]
        lines.append(
            f"  loss          {first['loss']:.3f} (step {first['step']}) -> {last['loss']:.3f} (step {last['step']})"
        )
        lines.append(f"  throughput    {last['samples_per_s']:.1f} samples/s, {last['tokens_per_s']:.0f} tokens/s")
    skipped = sum(result.data_report["skippedRecords"].values()) + sum(row["skipped"] for row in history)
    lines.append(f"  skipped       {skipped} record(s)")
    lines.append(f"  model         {result.model_uri}  (LlavaForConditionalGeneration.from_pretrained)")
    lines.append(f"  metrics       {result.output_uri}/metrics.jsonl")
    lines.append(f"  checkpoints   {result.output_uri}/checkpoints")
    return "\n".join(lines)


def _as_yaml_stream(text: str) -> str:
    documents = json.loads(text)
    documents = documents if isinstance(documents, list) else [documents]
    # JSON is YAML; a multi-document stream keeps every job's source position in errors.
    return "\n---\n".join(json.dumps(document) for document in documents)
