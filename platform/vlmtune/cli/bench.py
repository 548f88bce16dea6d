"""`vlmtune bench data|step [--json]`: benchmarks printed as ratios against baselines run alongside.

Each benchmark is a module under `vlmtune.bench` with `run(args) -> dict` and
`report(result, as_json) -> str`. Options are declared by a function listed here, so building
the parser imports neither torch nor the benchmark; adding one is a BENCHMARKS entry.
"""

from __future__ import annotations

import importlib


def _data_options(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--samples", type=int, default=256,
                        help="generated samples each path processes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated samples")


def step_options(parser) -> None:
    from vlmtune.bench.shapes import SHAPES  # pure data: no torch

    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu: Ray Train + DeepSpeed vs a plain torch loop; cuda: tokens/s and MFU on one GPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None, help="model shape for --device cuda")
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--accumulation", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=None, help="untimed optimizer steps first")
    parser.add_argument("--no-checkpointing", action="store_true", help="GPU: no gradient checkpointing")
    parser.add_argument("--checkpoint-layers", type=int, default=None,
                        help="GPU: recompute only this many decoder layers (default: all)")


BENCHMARKS = {
    "data": ("vlmtune.bench.data", _data_options,
             "preprocessing samples/s per core vs LLaVA's loader and a lower bound; padding of length grouping"),
    "step": ("vlmtune.bench.step", step_options,
             "train-step cost: Ray Train + DeepSpeed vs plain torch (CPU), or tokens/s and MFU (GPU)"),
}


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="benchmarks, as ratios against baselines run alongside")
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    for bench, (module_name, add_options, help_text) in BENCHMARKS.items():
        bench_parser = sub.add_parser(bench, help=help_text)
        add_options(bench_parser)
        bench_parser.set_defaults(handler=run, bench_module=module_name)


def run(args) -> int:
    module = importlib.import_module(args.bench_module)
    print(module.report(module.run(args), args.json))
    return 0
