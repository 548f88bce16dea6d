"""`vlmtune data demo --out DIR`: the generated demo task suite in the Vision-Flan schema."""

from __future__ import annotations


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="datasets: the demo suite")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    demo = sub.add_parser("demo", help="write the demo task suite (PIL-drawn tasks + scikit-learn digits)")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--per-task", type=int, default=64, help="training instances per task")
    demo.add_argument("--heldout-per-task", type=int, default=16, help="held-out instances per task")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--image-size", type=int, default=64)
    demo.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    from vlmtune.data.demo import write_demo_suite

    suite = write_demo_suite(args.out, per_task=args.per_task, heldout_per_task=args.heldout_per_task,
                             seed=args.seed, image_size=args.image_size)
    print(f"{len(suite.tasks)} tasks, {suite.n_train} training and {suite.n_heldout} held-out instances")
    print(f"  train    {suite.train_annotations}")
    print(f"  heldout  {suite.heldout_annotations}")
    return 0
