"""`vlmtune data demo|prepare|inspect`: the demo suite; raw Vision-Flan/LLaVA -> task shards; shard statistics."""

from __future__ import annotations

import json
import sys


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="datasets: the demo suite, task shards")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    demo = sub.add_parser("demo", help="write the demo task suite (PIL-drawn tasks + scikit-learn digits)")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--per-task", type=int, default=64, help="training instances per task")
    demo.add_argument("--heldout-per-task", type=int, default=16, help="held-out instances per task")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--image-size", type=int, default=64)
    demo.set_defaults(handler=run_demo)

    prepare = sub.add_parser("prepare", help="convert raw Vision-Flan / LLaVA annotations + images into task shards")
    prepare.add_argument("--format", required=True, choices=["vision-flan", "llava"], dest="fmt")
    prepare.add_argument(
        "--annotations",
        required=True,
        help="JSON list or JSON Lines file (local or s3://), or a Hugging Face dataset: a "
        "save_to_disk folder, a local Hub snapshot, or hf://ORG/NAME from the Hub cache",
    )
    prepare.add_argument("--split", default="train", help="split of a Hugging Face dataset (default: %(default)s)")
    prepare.add_argument("--images", help="image folder or .zip (local or s3://; default: the annotations' folder)")
    prepare.add_argument("--out", required=True, help="output folder (local or s3://)")
    prepare.add_argument("--max-per-task", type=int, help="keep at most N instances per task (Vision-Flan: 10000)")
    prepare.add_argument("--shard-size-mb", type=float, default=256.0, help="target shard size (default: %(default)s)")
    prepare.add_argument(
        "--image-tokens",
        type=int,
        default=576,
        help="tokens one image costs in the length estimate (default: %(default)s, CLIP-L/14-336)",
    )
    prepare.add_argument("--io-threads", type=int, default=16, help="parallel image reads (default: %(default)s)")
    prepare.add_argument(
        "--max-skipped-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="exit 1 when more than this fraction of records is skipped (default: %(default)s); "
        "keeping nothing always fails",
    )
    prepare.set_defaults(handler=run_prepare)

    inspect = sub.add_parser("inspect", help="tasks, counts, token lengths and skipped records of prepared shards")
    inspect.add_argument("uri", help="folder holding manifest.json (local or s3://)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument(
        "--verify", action="store_true", help="also checksum every shard against the manifest (reads the whole dataset)"
    )
    inspect.set_defaults(handler=run_inspect)


def run_demo(args) -> int:
    from vlmtune.data.demo import write_demo_suite

    suite = write_demo_suite(
        args.out,
        per_task=args.per_task,
        heldout_per_task=args.heldout_per_task,
        seed=args.seed,
        image_size=args.image_size,
    )
    print(f"{len(suite.tasks)} tasks, {suite.n_train} training and {suite.n_heldout} held-out instances")
    print(f"  train    {suite.train_annotations}")
    print(f"  heldout  {suite.heldout_annotations}")
    return 0


def run_prepare(args) -> int:
    from vlmtune.data.inspect import prepare_problem
    from vlmtune.data.prepare import PrepareConfig, prepare

    try:
        config = PrepareConfig(
            fmt=args.fmt,
            annotations=args.annotations,
            images=args.images,
            out=args.out,
            split=args.split,
            max_per_task=args.max_per_task,
            shard_size_mb=args.shard_size_mb,
            image_tokens=args.image_tokens,
            io_threads=args.io_threads,
        )
        result = prepare(config, progress=lambda line: print(line, file=sys.stderr))
    except (ValueError, OSError) as err:  # unreadable input: one line naming the place, never a traceback
        print(f"vlmtune data prepare: {err}", file=sys.stderr)
        return 1
    manifest = result.manifest
    if result.up_to_date:
        print(f"{args.out}: up to date ({manifest['instances']} instances, {len(manifest['tasks'])} tasks)")
    else:
        skipped = manifest["skipped"]
        print(
            f"{args.out}: {manifest['instances']} instances in {len(manifest['tasks'])} tasks, "
            f"{len(manifest['shards'])} shards; skipped {skipped['total']}"
        )
        for reason, count in skipped["reasons"].items():
            print(f"  {reason:<40} {count}")
    problem = prepare_problem(manifest, args.max_skipped_fraction)
    if problem:
        print(
            f"vlmtune data prepare: {args.out}: {problem}; check --format, --images and the annotations "
            "(`vlmtune data inspect` lists examples)",
            file=sys.stderr,
        )
        return 1
    return 0


def run_inspect(args) -> int:
    from vlmtune.data.inspect import inspect_dataset, render
    from vlmtune.data.shards import ShardFormatError

    try:
        report = inspect_dataset(args.uri, verify=args.verify)
    except (ShardFormatError, ValueError, OSError) as err:
        print(f"vlmtune data inspect: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1) if args.json else render(report))
    if report["damaged"]:
        print(
            f"vlmtune data inspect: {len(report['damaged'])} damaged shard(s): re-run `vlmtune data prepare` "
            "(or restore them from a copy)",
            file=sys.stderr,
        )
        return 1
    return 0
