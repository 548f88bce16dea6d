"""`vlmtune eval score|demo`: re-score saved predictions by the published rules; write the demo benchmarks."""

from __future__ import annotations

import json
import sys

BENCHMARK_NAMES = ("mme", "pope", "mc", "heldout", "forgetting", "llavabench", "mmvet", "mmmu")


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="evaluation: score saved predictions, write demo benchmarks")
    sub = parser.add_subparsers(dest="eval_command", required=True, metavar="SUBCOMMAND")
    score = sub.add_parser("score", help="score a predictions JSON-lines file against a benchmark's data (no model)")
    score.add_argument("--benchmark", required=True, choices=BENCHMARK_NAMES)
    score.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="the benchmark's data, local or s3://: Parquet file or split folder, MMBench TSV, "
        "Vision-Flan annotation JSON, LLaVA-Bench or MM-Vet folder, MMMU release root",
    )
    score.add_argument(
        "--predictions",
        required=True,
        metavar="FILE",
        help='JSON lines {"question_id": ..., "question": ..., "prediction": ...} (LLaVA answer '
        'files with "text" too), or one JSON object {question_id: answer} (MM-Vet, MMMU)',
    )
    score.add_argument(
        "--reviews",
        metavar="FILE",
        help="llavabench/mmvet: the judge's replies: vlmtune's reviews/<benchmark>.jsonl, LLaVA's "
        "review JSONL ({question_id, content}) or MM-Vet's grade JSON",
    )
    score.add_argument("--limit", type=int, metavar="N", help="score only the first N items per group")
    score.add_argument("--json", action="store_true", help="print the result as JSON")
    score.set_defaults(handler=run_score)
    demo = sub.add_parser("demo", help="write offline demo benchmarks (published layouts) from the demo suite")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--per-task", type=int, default=16, help="training instances per task of the suite")
    demo.add_argument("--heldout-per-task", type=int, default=16, help="held-out instances per task")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--image-size", type=int, default=64)
    demo.set_defaults(handler=run_demo)


def run_score(args) -> int:
    from vlmtune.eval import score_file
    from vlmtune.eval.report import benchmark_markdown

    try:
        result = score_file(args.benchmark, args.data, args.predictions, args.limit, args.reviews)
    except (OSError, ValueError, KeyError) as err:
        print(f"vlmtune eval score: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else benchmark_markdown(args.benchmark, result))
    return 0


def run_demo(args) -> int:
    from pathlib import Path

    from vlmtune.data.demo import ensure_demo_suite
    from vlmtune.eval.demo import write_demo_benchmark

    out = Path(args.out)
    suite = ensure_demo_suite(
        out / "suite",
        per_task=args.per_task,
        heldout_per_task=args.heldout_per_task,
        seed=args.seed,
        image_size=args.image_size,
    )
    for name in BENCHMARK_NAMES:
        print(f"{name:<11} {write_demo_benchmark(name, suite, str(out))}")
    return 0


def summary(result) -> str:
    """What `vlmtune run` prints for a finished EvalJob."""
    lines = [f"\n{result.job}: evaluated {result.model}"]
    lines += [f"  {key:<26} {value:.4g}" for key, value in result.headline.items()]
    lines.append(f"  results       {result.files['results']}")
    lines.append(f"  table         {result.files['markdown']}")
    return "\n".join(lines)
