"""Every GPU figure of issue 17 in one run, for a short GPU loan: `bench/gpu.sh` runs
`python -m vlmtune.bench.gpu_suite`.

Step variants: `bench step` (`bench.step.bench_gpu`: the real `train_step`, no Ray, no DeepSpeed) on one shape,
each lever on against today's path (`VARIANTS`), each in a freshly built model. Then `bench e2e` (`bench.e2e`):
the full path against the bare step on the largest shape DeepSpeed fits on one card. The step variants need
torch and transformers only (what the lent GPU machines hold); bench e2e also needs Ray, DeepSpeed and pydantic
and is recorded as skipped, naming what is missing, where they are not installed.

Everything runs against one deadline: a variant that would not finish before it is recorded as skipped, and
e2e gets a reserved share. Results are rewritten to `<out>/gpu_suite.json` after each run, so a run cut short
leaves what it measured; the summary table goes to stdout last.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from vlmtune.train.levers import Levers

E2E_NEEDS = ("ray", "deepspeed", "pydantic")


@dataclass(frozen=True)
class Variant:
    """One `bench step` configuration; `versus` names the variant it is compared with."""

    name: str
    about: str
    levers: Levers = field(default_factory=Levers)
    checkpoint_share: float = 1.0
    """Share of the decoder layers that recompute (1: all, as today's gradientCheckpointing)."""
    ragged: bool = False
    """Samples of random lengths, right-padded (what real micro-batches carry), instead of all full length."""
    versus: str = "baseline"


VARIANTS = (
    Variant("baseline", "today's path: every layer recomputes, full logits, padded rows, eager layers, SDPA"),
    Variant("chunked_loss", "chunkedLoss: head + cross-entropy per chunk, no full logits", Levers(chunked_loss=True)),
    Variant("compile_layers", "compileLayers: torch.compile each decoder layer", Levers(compile_layers=True)),
    Variant("combined", "chunkedLoss + compileLayers", Levers(chunked_loss=True, compile_layers=True)),
    Variant("ragged_padded", "ragged samples right-padded (the reference for packing)", ragged=True),
    Variant(
        "ragged_packed",
        "packSamples: ragged samples in one padding-free row",
        Levers(pack=True),
        ragged=True,
        versus="ragged_padded",
    ),
    Variant(
        "offload_half",
        "offloadActivations: first half of the layers recompute, the rest offload to host",
        Levers(offload_activations=True),
        checkpoint_share=0.5,
    ),
)


@dataclass(frozen=True)
class SuiteConfig:
    device: str = "cuda"
    shape: str = "llava-7b"
    micro_batch: int = 8
    seq_len: int = 2048
    accumulation: int = 2
    steps: int = 3
    warmup: int = 2
    """Untimed steps first: compiled variants compile in them."""
    e2e_shape: str = "llava-2.7b"
    e2e_micro_batch: int = 8
    e2e_cpus_per_worker: int = 4
    budget_s: float = 480.0
    """Everything ends within this many seconds (a variant that would overrun is skipped)."""
    e2e_reserve_s: float = 200.0
    """Kept for bench e2e when it can run."""


DRY_RUN = SuiteConfig(
    device="cpu",
    shape="tiny",
    micro_batch=2,
    seq_len=128,
    accumulation=2,
    steps=1,
    warmup=1,
    e2e_shape="tiny",
    e2e_micro_batch=2,
    e2e_cpus_per_worker=1,
    budget_s=600.0,
    e2e_reserve_s=240.0,
)
"""The same runs on CPU with the tiny shape: checks the script end to end where no GPU is lent."""


def checkpoint_layers(variant: Variant, layers: int) -> int | None:
    """`--checkpoint-layers` of a variant on a model of `layers` decoder layers (None: all of them)."""
    if variant.checkpoint_share >= 1.0:
        return None
    return max(1, min(layers - 1, round(layers * variant.checkpoint_share)))


def missing_packages(names: tuple[str, ...] = E2E_NEEDS) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


class Deadline:
    """The suite's clock: what is left, and whether a run as long as the longest so far still fits."""

    def __init__(self, budget_s: float, clock=time.monotonic):
        self.clock, self.ends, self.longest = clock, clock() + budget_s, 0.0

    def left(self, reserve_s: float = 0.0) -> float:
        return self.ends - reserve_s - self.clock()

    def fits(self, reserve_s: float = 0.0) -> bool:
        return self.left(reserve_s) > self.longest

    def ran(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)


def run_suite(config: SuiteConfig, out: Path, variants: tuple[Variant, ...] = VARIANTS, clock=time.monotonic) -> dict:
    """Run the step variants then bench e2e within `config.budget_s`; results rewritten to `out` as they come.

    Returns:
        {"environment", "config", "step": [one result per variant], "e2e": result or {"skipped": why}}.
    """
    deadline = Deadline(config.budget_s, clock)
    missing = missing_packages()
    reserve = 0.0 if missing else config.e2e_reserve_s
    result = {"environment": environment(config.device), "config": _config_dict(config), "step": [], "e2e": None}
    for variant in variants:
        if deadline.fits(reserve):
            started = clock()
            figures = _step_variant(config, variant)
            deadline.ran(clock() - started)
        else:
            share = " before bench e2e's share" if reserve else ""
            figures = {
                "skipped": f"time budget: {max(deadline.left(reserve), 0):.0f} s left{share}, "
                f"the longest variant took {deadline.longest:.0f} s"
            }
        result["step"].append({"variant": variant.name, "about": variant.about, "versus": variant.versus, **figures})
        _write(out, result)
    result["e2e"] = _e2e(config, deadline, missing)
    _write(out, result)
    return result


def _step_variant(config: SuiteConfig, variant: Variant) -> dict:
    import torch

    from vlmtune.bench.step import bench_gpu
    from vlmtune_model.shapes import SHAPES

    layers = SHAPES[config.shape].text["num_hidden_layers"]
    try:
        return bench_gpu(
            config.shape,
            config.micro_batch,
            config.seq_len,
            config.accumulation,
            config.steps,
            config.warmup,
            checkpointing=True,
            device_type=config.device,
            checkpoint_layers=checkpoint_layers(variant, layers),
            levers=variant.levers,
            ragged=variant.ragged,
        )
    except torch.cuda.OutOfMemoryError:
        return {"error": "out of memory"}
    except Exception as err:  # one variant's failure is a figure too; the others still run
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]}
    finally:
        _free(config.device, compiled=variant.levers.compile_layers)


def _free(device: str, compiled: bool) -> None:
    import torch

    if compiled:
        torch._dynamo.reset()  # compiled graphs hold the variant's model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _e2e(config: SuiteConfig, deadline: Deadline, missing: list[str]) -> dict:
    if missing:
        return {
            "skipped": f"needs {', '.join(missing)}, not installed here (install the project: "
            "pip install -e '.[train]', or carry their wheels in .whl/)"
        }
    from vlmtune.bench.e2e import E2EConfig, run_e2e_bench

    left = deadline.left()
    if left < 60:
        return {"skipped": f"time budget: {max(left, 0):.0f} s left"}
    e2e = E2EConfig(
        device=config.device,
        shape=config.e2e_shape,
        micro_batch=config.e2e_micro_batch,
        accumulation=config.accumulation,
        seq_len=config.seq_len,
        steps=config.steps,
        warmup=config.warmup,
        cpus_per_worker=config.e2e_cpus_per_worker,
        timeout_s=left,
    )
    try:
        return run_e2e_bench(e2e)
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"[-2000:]}


def environment(device: str) -> dict:
    import torch
    import transformers

    from vlmtune.train.attention import flash_attn_installed

    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "flash_attn": flash_attn_installed(),
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        found.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1))
    return found


def _config_dict(config: SuiteConfig) -> dict:
    return {key: getattr(config, key) for key in config.__dataclass_fields__}


def _write(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "gpu_suite.json.partial"
    partial.write_text(json.dumps(result, indent=1, default=str))
    partial.replace(out / "gpu_suite.json")


def table(result: dict) -> str:
    """The summary: one line per step variant, then bench e2e (pure)."""
    env = result["environment"]
    lines = [
        f"vlmtune GPU suite: {env.get('gpu', env['device'])}, torch {env['torch']}, "
        f"transformers {env['transformers']}, flash_attn {'yes' if env['flash_attn'] else 'no'}",
        f"bench step, {result['config']['shape']}, micro-batch {result['config']['micro_batch']} x "
        f"{result['config']['accumulation']}, {result['config']['seq_len']} tokens",
        f"{'variant':<16} {'ckpt':>4} {'attention':<17} {'tokens/s':>10} {'MFU':>6} {'peak GiB':>8}  versus",
    ]
    by_name = {row["variant"]: row for row in result["step"]}
    for row in result["step"]:
        lines.append(_step_line(row, by_name.get(row["versus"])))
    lines.append(_e2e_line(result["e2e"]))
    return "\n".join(lines)


def _step_line(row: dict, reference: dict | None) -> str:
    if "tokens_per_s" not in row:
        return f"{row['variant']:<16} {row.get('error') or row.get('skipped')}"
    versus = "-"
    if reference is not None and reference is not row and reference.get("tokens_per_s"):
        versus = f"{row['tokens_per_s'] / reference['tokens_per_s']:.3f}x {row['versus']}"
    memory = f"{row['max_memory_gib']:.1f}" if row.get("max_memory_gib") is not None else "-"
    return (
        f"{row['variant']:<16} {row['checkpoint_layers']:>4} {row['attention']:<17} "
        f"{row['tokens_per_s']:>10,.0f} {_pct(row['mfu']):>6} {memory:>8}  {versus}"
    )


def _e2e_line(e2e: dict | None) -> str:
    if not e2e or "ratio" not in e2e:
        return f"bench e2e: {(e2e or {}).get('error') or (e2e or {}).get('skipped') or 'not run'}"
    meets = "meets" if e2e["meets_targets"] else "misses"
    return (
        f"bench e2e, {e2e['shape']}: bare {e2e['bare']['tokens_per_s']:,.0f} tokens/s MFU "
        f"{_pct(e2e['bare']['mfu'])}; full path {e2e['full']['tokens_per_s']:,.0f} tokens/s MFU "
        f"{_pct(e2e['full']['mfu'])}; ratio {e2e['ratio']:.3f}; data wait {e2e['data_wait_fraction']:.2%} "
        f"({meets} the targets >= {e2e['targets']['ratio']}, <= {e2e['targets']['data_wait_fraction']:.0%})"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmtune.bench.gpu_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_suite.json")
    parser.add_argument("--dry-run", action="store_true", help="the same runs on CPU with the tiny shape")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds everything must end within")
    args = parser.parse_args(argv)
    config = DRY_RUN if args.dry_run else SuiteConfig()
    if args.budget_s is not None:
        config = replace(config, budget_s=args.budget_s, e2e_reserve_s=min(config.e2e_reserve_s, args.budget_s / 2))
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_suite: no CUDA device here; run bench/gpu.sh --dry-run for the CPU check", file=sys.stderr)
            return 2
    result = run_suite(config, Path(args.out))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
