"""A plan as the readable table `vlmtune plan` prints."""

from __future__ import annotations

from vlmtune.plan.memory import GIB, Setup
from vlmtune.plan.planner import Plan


def render(plan: Plan, files: str = "FILE") -> str:
    """The plan as text; `files` is how the suggested re-check command names the job files."""
    gpu, setup, memory, size = plan.gpu, plan.setup, plan.memory, plan.size
    states, acts = memory.states, memory.activations
    accumulation = setup.global_batch // (setup.ranks * setup.micro_batch)
    offload = [name for name, on in (("optimizer", setup.offload_optimizer), ("params", setup.offload_params)) if on]
    trained = size.trained_parts(plan.trainable)
    parts = ", ".join(
        f"{part.replace('_', ' ')} {_count(n)}{'' if part in trained else ' frozen'}" for part, n in size.parts.items()
    )
    if size.adapters:
        parts += f", LoRA adapters {_count(size.adapters)}"
    header = (
        f"TuningJob/{plan.job} on {setup.ranks} x {gpu.name} ({_gib(gpu.memory_bytes)} GiB, "
        f"{gpu.peak_flops / 1e12:.0f} TFLOP/s bf16)"
    )
    model = (
        f"  model     {plan.shape.name}: {_count(size.total)} params ({parts}); "
        f"{_count(size.trainable(plan.trainable))} trainable"
    )
    settings = (
        f"  setup     {setup.precision}, ZeRO-{setup.zero_stage}"
        f"{', offload ' + ' + '.join(offload) if offload else ''}, micro-batch {setup.micro_batch} x "
        f"{setup.ranks} workers x {accumulation} accumulation = {setup.global_batch}, "
        f"maxLength {setup.seq_len}, gradient checkpointing {_checkpointing(setup)}{_levers(setup)}"
    )
    lines = [
        header,
        model,
        settings,
        "",
        "  per-GPU memory                           GiB",
    ]
    rows = [
        (f"parameters ({'16-bit' if setup.mixed else 'fp32'})", states.params),
        ("gradients", states.gradients),
        ("optimizer states (master + Adam)", states.optimizer),
        ("ZeRO-3 largest-module buffers", states.zero_buffers),
        ("DeepSpeed buckets, gathered params", memory.buffers),
        (f"activations ({_kept(setup)})", acts.kept),
        ("backward peak: " + ("loss" if acts.peak == acts.loss else "recomputed layer"), acts.peak),
        ("(host) offloaded activations", acts.offloaded),
        ("CUDA context + 10% fragmentation", memory.overhead),
    ]
    lines += [f"    {label:<36}{_gib(value):>7}" for label, value in rows if value and not label.startswith("(host)")]
    share = memory.total / gpu.memory_bytes
    verdict = "fits" if plan.fits else "does NOT fit"
    lines.append(f"    {'total':<36}{_gib(memory.total):>7}  of {_gib(gpu.memory_bytes)} ({share:.0%}): {verdict}")
    lines += [f"    {label:<36}{_gib(value):>7}" for label, value in rows if value and label.startswith("(host)")]
    if not plan.fits:
        lines.append(_suggestion_line(plan, files))
    lines += ["", *_budget_lines(plan), *(f"  note      {note}" for note in plan.notes)]
    return "\n".join(lines)


def _suggestion_line(plan: Plan, files: str) -> str:
    suggestion = plan.suggestion
    if suggestion is None:
        return (
            "  suggest   nothing fits: not even ZeRO-3 with full offload, micro-batch 1 and checkpointing; "
            "use a larger GPU or train fewer parts"
        )
    changes = "; ".join(f"{c.field}: {_value(c.old)} -> {_value(c.new)}" for c in suggestion.changes)
    overrides = " ".join(f"--set {c.as_override()}" for c in suggestion.changes)
    return (
        f"  suggest   {changes} ({_gib(suggestion.per_gpu_bytes)} GiB per GPU)\n"
        f"            check: vlmtune plan {files} --gpu {plan.gpu.name} {overrides}"
    )


def _budget_lines(plan: Plan) -> list[str]:
    b = plan.budget
    if b.steps is None:
        return [f"  training  {b.samples_source} for steps, tokens and hours"]
    samples = "?" if b.samples is None else f"{b.samples:,}"
    training = (
        f"  training  {samples} samples ({b.samples_source}) -> {b.steps:,} steps, "
        f"{b.tokens / 1e9:.2f} B tokens at {b.tokens_per_sample} tokens/sample"
    )
    compute = (
        f"  compute   {b.flops:.3g} FLOPs = {b.gpu_hours:,.1f} GPU-hours at {b.mfu:.0%} MFU (assumed) "
        f"-> {b.wall_hours:,.1f} h on {plan.setup.ranks} GPUs"
    )
    return [training, compute]


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _checkpointing(setup: Setup) -> str:
    if not setup.checkpointing:
        return "off"
    return "on" if setup.checkpoint_layers is None else f"on for the first {setup.checkpoint_layers} layers"


def _levers(setup: Setup) -> str:
    named = [
        name
        for name, on in (
            ("chunked loss", setup.chunked_loss),
            ("packed rows", setup.pack_samples),
            ("activations offloaded", setup.offload_activations),
        )
        if on
    ]
    return "; " + ", ".join(named) if named else ""


def _kept(setup: Setup) -> str:
    if not setup.checkpointing:
        return "all layers"
    return "layer inputs" if setup.checkpoint_layers is None else "inputs of checkpointed layers, rest in full"
