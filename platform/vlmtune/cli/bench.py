"""`vlmtune bench data|step|e2e|scale [--json]`: benchmarks printed as ratios against baselines run alongside.

Each benchmark is a module under `vlmtune.bench` with a typed entry point and `report(result, as_json)`.
This module only declares options and turns them into those typed calls, so building the parser
imports neither torch nor a benchmark; adding one is a BENCHMARKS entry.
"""

from __future__ import annotations


def _data_options(parser) -> None:
    parser.add_argument(
        "--samples", type=int, default=256, help="generated samples each path processes (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated samples (default: %(default)s)")


def _data(args) -> str:
    from vlmtune.bench.data import DataBenchConfig, report, run_data_bench

    return report(run_data_bench(DataBenchConfig(samples=args.samples, seed=args.seed)), args.json)


def _step_options(parser) -> None:
    from vlmtune_model.shapes import SHAPES  # pure data: no torch

    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cpu: Ray Train + DeepSpeed vs a plain torch loop (lever flags apply to both); cuda: "
        "tokens/s and MFU on one GPU (default: %(default)s)",
    )
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default=None, help="model shape for --device cuda (default: llava-7b)"
    )
    parser.add_argument("--micro-batch", type=int, default=None, help="default: 8")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 2048 on cuda, 128 on cpu")
    parser.add_argument("--accumulation", type=int, default=None, help="default: 2")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps (default: 8 cuda, 10 cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed optimizer steps first (default: 2)")
    parser.add_argument("--no-checkpointing", action="store_true", help="GPU: no gradient checkpointing")
    parser.add_argument(
        "--checkpoint-layers",
        type=int,
        default=None,
        help="GPU: recompute only this many decoder layers (default: all)",
    )
    parser.add_argument(
        "--ragged",
        action="store_true",
        help="GPU: samples of random lengths up to --seq-len, right-padded (default: all full length)",
    )
    _lever_options(parser)


def _lever_options(parser) -> None:
    """The spec.training levers, as flags of the single-device benchmarks."""
    group = parser.add_argument_group("levers (spec.training fields)")
    group.add_argument("--chunked-loss", action="store_true", help="chunkedLoss: no full logits")
    group.add_argument("--compile-layers", action="store_true", help="compileLayers: torch.compile each decoder layer")
    group.add_argument("--pack-samples", action="store_true", help="packSamples: one padding-free row per micro-batch")
    group.add_argument(
        "--offload-activations",
        action="store_true",
        help="offloadActivations: activations outside recomputed layers wait in host memory",
    )
    group.add_argument(
        "--attention",
        choices=["auto", "sdpa", "flash_attention_2", "flex_attention"],
        default="auto",
        help="attention: the language model's kernel (default: %(default)s)",
    )


def _levers(args):
    from vlmtune.train.levers import Levers

    return Levers(
        chunked_loss=args.chunked_loss,
        pack=args.pack_samples,
        offload_activations=args.offload_activations,
        compile_layers=args.compile_layers,
        attention=args.attention,
    )


def _step(args) -> str:
    from vlmtune.bench.step import bench_gpu, report

    if args.device == "cuda":
        result = bench_gpu(
            args.shape or "llava-7b",
            args.micro_batch or 8,
            args.seq_len or 2048,
            args.accumulation or 2,
            args.steps or 8,
            args.warmup or 2,
            not args.no_checkpointing,
            checkpoint_layers=args.checkpoint_layers,
            levers=_levers(args),
            ragged=args.ragged,
        )
    else:
        from vlmtune.bench.step_cpu import bench_cpu

        result = bench_cpu(
            args.micro_batch or 8, args.accumulation or 2, args.steps or 10, args.warmup or 2, levers=_levers(args)
        )
    return report(result, args.json)


def _e2e_options(parser) -> None:
    from vlmtune_model.shapes import SHAPES  # pure data: no torch

    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cpu: fp32, DeepSpeed's CPU path; cuda: bf16 on one GPU (default: %(default)s)",
    )
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default=None, help="model shape (default: tiny on cpu, llava-2.7b on cuda)"
    )
    parser.add_argument("--micro-batch", type=int, default=None, help="default: 2 on cpu, 8 on cuda")
    parser.add_argument("--accumulation", type=int, default=2, help="default: %(default)s")
    parser.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="tokens per sample, image tokens included (default: 128 on cpu, 2048 on cuda)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first (default: %(default)s)")
    parser.add_argument("--no-checkpointing", action="store_true", help="no gradient checkpointing")
    parser.add_argument(
        "--checkpoint-layers", type=int, default=None, help="recompute only this many decoder layers (default: all)"
    )
    parser.add_argument(
        "--cpus-per-worker",
        type=int,
        default=None,
        help="the Ray Train worker's CPUs, also the bare step's threads on cpu (default: 1 cpu, 4 cuda)",
    )
    parser.add_argument("--workdir", default=None, help="keep data, model and run here (default: a temporary folder)")
    _lever_options(parser)


def _e2e(args) -> str:
    from vlmtune.bench.e2e import E2EConfig, report, run_e2e_bench

    gpu = args.device == "cuda"
    config = E2EConfig(
        device=args.device,
        shape=args.shape,
        micro_batch=args.micro_batch or (8 if gpu else 2),
        accumulation=args.accumulation,
        seq_len=args.seq_len or (2048 if gpu else 128),
        steps=args.steps,
        warmup=args.warmup,
        checkpointing=not args.no_checkpointing,
        checkpoint_layers=args.checkpoint_layers,
        levers=_levers(args),
        cpus_per_worker=args.cpus_per_worker or (4 if gpu else 1),
        workdir=args.workdir,
    )
    return report(run_e2e_bench(config), args.json)


def _scale_options(parser) -> None:
    parser.add_argument("--instances", type=int, required=True, help="synthetic Vision-Flan instances")
    parser.add_argument(
        "--compare",
        type=int,
        default=None,
        metavar="M",
        help="also run M instances and print the growth ratios (default: none)",
    )
    parser.add_argument("--tasks", type=int, default=191, help="tasks (default: %(default)s, as Vision-Flan)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps before stopping (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers (default: %(default)s)")
    parser.add_argument(
        "--workdir", default=None, help="where data is synthesized and prepared (default: $VLMTUNE_CACHE/bench-scale)"
    )


def _scale(args) -> str:
    from vlmtune.bench.scale import ScaleBenchConfig, report, run_scale_bench

    config = ScaleBenchConfig(
        instances=args.instances,
        compare=args.compare,
        workdir=args.workdir,
        tasks=args.tasks,
        steps=args.steps,
        workers=args.workers,
    )
    return report(run_scale_bench(config), args.json)


BENCHMARKS = {
    "data": (
        _data_options,
        _data,
        "preprocessing samples/s per core vs LLaVA's loader and a lower bound; padding of length grouping",
    ),
    "step": (
        _step_options,
        _step,
        "train-step cost: Ray Train + DeepSpeed vs plain torch (CPU), or tokens/s and MFU (GPU)",
    ),
    "e2e": (
        _e2e_options,
        _e2e,
        "the full path (vlmtune run: Ray Data from shards, Ray Train, DeepSpeed) vs the bare train step, "
        "same shape: MFU of both, their ratio, data wait",
    ),
    "scale": (
        _scale_options,
        _scale,
        "prepare throughput and memory, driver/worker memory and time to the first step, as data grows",
    ),
}


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="benchmarks, as ratios against baselines run alongside")
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    for bench, (add_options, run_bench, help_text) in BENCHMARKS.items():
        bench_parser = sub.add_parser(bench, help=help_text)
        bench_parser.add_argument("--json", action="store_true", help="print one JSON object")
        add_options(bench_parser)
        bench_parser.set_defaults(handler=_handler(run_bench))


def _handler(run_bench):
    def handle(args) -> int:
        print(run_bench(args))
        return 0

    return handle
