"""`spec.training`: optimisation, precision and DeepSpeed settings."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from vlmtune.spec.base import SpecModel
from vlmtune.spec.errors import FieldIssues


class Precision(str, Enum):
    auto = "auto"
    """bf16 on GPUs, fp32 on CPUs."""
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"


class Schedule(str, Enum):
    cosine = "cosine"
    linear = "linear"
    constant = "constant"


class Resume(str, Enum):
    auto = "auto"
    """Continue from the newest checkpoint in the output, if any (a killed or preempted job picks up where it was)."""
    never = "never"
    """Start from scratch; earlier checkpoints in the output are deleted."""


class Attention(str, Enum):
    auto = "auto"
    """SDPA; with packSamples, flash_attention_2 where it is installed on GPUs, else flex_attention on GPUs (it skips
    the blocks between packed samples) and SDPA with a block-diagonal mask on CPUs."""
    sdpa = "sdpa"
    """PyTorch's scaled_dot_product_attention (padded rows: flash kernel; packed rows: a dense block-diagonal mask)."""
    flash_attention_2 = "flash_attention_2"
    """The flash-attn package's varlen kernel (GPUs, bf16/fp16; the package must be installed in the image)."""
    flex_attention = "flex_attention"
    """PyTorch's flex_attention with a block mask (compiled on first use)."""


class DeepSpeedSpec(SpecModel):
    """DeepSpeed ZeRO settings; the rest of the DeepSpeed config is derived from the spec."""

    zero_stage: int = Field(default=2, ge=0, le=3)
    """ZeRO stage: 2 shards optimizer state and gradients, 3 also parameters."""
    offload_optimizer: bool = False
    """Keep optimizer state in CPU memory."""
    offload_params: bool = False
    """Keep parameters in CPU memory (ZeRO-3 only)."""

    @model_validator(mode="after")
    def _offload_params_needs_zero3(self) -> DeepSpeedSpec:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError(f"offloadParams needs zeroStage: 3 (got zeroStage: {self.zero_stage})")
        return self


class TrainingSpec(SpecModel):
    """Optimisation settings (the paper's stage 1: lr 2e-5, global batch 128, 1 epoch, maxLength 2048)."""

    epochs: int = Field(default=1, ge=1)
    """Passes over the sampled data."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides epochs when smaller)."""
    learning_rate: float = Field(default=2.0e-5, gt=0, le=1)
    """Peak learning rate."""
    lr_schedule: Schedule = Schedule.cosine
    """Learning-rate decay after warmup."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Fraction of steps spent warming up linearly."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    global_batch_size: int = Field(default=128, ge=1)
    """Samples per optimizer step across all workers."""
    micro_batch_size: int = Field(default=1, ge=1)
    """Samples per forward pass on one worker; gradient accumulation makes up the rest."""
    max_length: int = Field(default=2048, ge=16)
    """Tokens per sample (image tokens included); longer samples are truncated and counted."""
    gradient_clipping: float = Field(default=1.0, ge=0)
    """Clip the global gradient norm to this value (0 disables)."""
    precision: Precision = Precision.auto
    """Numeric precision of training."""
    group_by_length: bool = True
    """Put samples of similar length in the same micro-batch (less padding), as LLaVA does."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    checkpoint_layers: int | None = Field(default=None, ge=1)
    """With gradientCheckpointing, recompute only the first N decoder layers of the language model and keep
    the rest's activations: faster where memory allows (`vlmtune plan` shows what fits). Default: all layers."""
    offload_activations: bool = False
    """Keep the activations of the decoder layers that do not recompute (all of them without gradientCheckpointing,
    the layers past checkpointLayers with it) in pinned host memory from the forward to the backward pass: frees
    GPU memory for host transfers (a memory lever, not a speed one; `vlmtune plan` shows both sides)."""
    chunked_loss: bool = False
    """Compute the language-model head and the cross-entropy in chunks of supervised tokens, recomputing each chunk's
    logits in the backward pass: the tokens x vocabulary logits are never held whole, and positions without a label
    get none. Same loss and gradients as the full logits (within float rounding); `vlmtune plan` shows what it frees."""
    compile_layers: bool = False
    """torch.compile each decoder layer of the language model (regional compilation: one compiled graph serves every
    layer), fusing norms, rotary embeddings and the gated MLP's elementwise work. The first steps pay the compile
    time (about a minute on a 7B model); not with deepspeed.zeroStage 3."""
    pack_samples: bool = False
    """Concatenate each micro-batch's samples into one row without padding (position ids restart at each sample;
    see attention): no compute is spent on padding. Same loss as padded rows."""
    attention: Attention = Attention.auto
    """Attention kernel of the language model."""
    seed: int = 0
    """Seed of model initialisation and dropout."""
    log_every_steps: int = Field(default=10, ge=1)
    """Report metrics every N optimizer steps."""
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    """Checkpoint every N optimizer steps (only at the end when omitted)."""
    keep_checkpoints: int = Field(default=2, ge=1)
    """Checkpoints kept in the output (oldest deleted first)."""
    resume: Resume = Resume.auto
    """What to do when the output already holds checkpoints of this job."""
    record_samples: bool = False
    """Write the key of every trained sample under `<output>/samples/` (audits, exact-resume checks)."""
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec)
    """DeepSpeed ZeRO settings."""

    @model_validator(mode="after")
    def _checkpoint_layers_need_checkpointing(self) -> TrainingSpec:
        if self.checkpoint_layers is not None and not self.gradient_checkpointing:
            problem = f"{self.checkpoint_layers} layers to checkpoint, but gradientCheckpointing is off"
            fix = "set gradientCheckpointing: true, or remove checkpointLayers"
            raise FieldIssues([(("checkpointLayers",), problem, fix)])
        return self

    @model_validator(mode="after")
    def _levers_fit_together(self) -> TrainingSpec:
        problems = []
        if self.compile_layers and self.deepspeed.zero_stage == 3:
            problems.append(
                (
                    ("compileLayers",),
                    "is not supported with deepspeed.zeroStage 3: ZeRO-3 gathers each "
                    "layer's parameters in hooks torch.compile must skip, splitting every compiled layer",
                    "use deepspeed.zeroStage 2, or set compileLayers: false",
                )
            )
        if self.offload_activations and self.gradient_checkpointing and self.checkpoint_layers is None:
            problems.append(
                (
                    ("offloadActivations",),
                    "has nothing to offload: gradientCheckpointing without "
                    "checkpointLayers recomputes every decoder layer",
                    "set checkpointLayers below the model's decoder layers (those past it offload), "
                    "or set offloadActivations: false",
                )
            )
        if problems:
            raise FieldIssues(problems)
        return self
