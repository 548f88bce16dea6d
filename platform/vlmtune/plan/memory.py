"""Per-GPU memory of one data-parallel rank: model states by ZeRO stage, activations, overhead.

Model states follow DeepSpeed's own accounting (its `estimate_zero{2,3}_model_states_mem_needs`,
which a test matches byte for byte). Per TRAINABLE parameter, in bf16/fp16 mixed precision:

    16-bit weight 2 | 16-bit gradient 2 | fp32 gradient 4 | fp32 master weight 4 | Adam moments 8

ZeRO-1 shards the fp32 parts (gradient, master, moments), ZeRO-2 also the 16-bit gradient, ZeRO-3
also the 16-bit weights; there DeepSpeed's estimator counts the 16-bit gradients only in the
per-module working buffers: 4 bytes x the largest module's parameters. Optimizer offload moves the fp32
parts (and, under ZeRO-2, the 16-bit gradient partition) to CPU memory; parameter offload moves the
16-bit weights. Frozen parameters only hold their 16-bit weights (sharded under ZeRO-3).
In fp32 there is no 16-bit copy: weight 4, gradient 4, Adam moments 8.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GIB = 2**30
CUDA_CONTEXT_BYTES = GIB
"""CUDA context, cuBLAS and NCCL workspaces: typically 0.5-1 GiB per process."""
FRAGMENTATION = 0.10
"""Allowance for the caching allocator's fragmentation (reserved minus allocated memory)."""


@dataclass(frozen=True)
class Setup:
    """The settings that decide per-GPU memory; the fit search changes them one at a time."""

    ranks: int
    """Data-parallel DeepSpeed ranks (one per Ray Train worker)."""
    micro_batch: int
    global_batch: int
    seq_len: int
    """Tokens per sample the memory is planned for (maxLength: the worst case)."""
    precision: str
    """bf16, fp16 or fp32."""
    checkpointing: bool
    zero_stage: int
    offload_optimizer: bool = False
    offload_params: bool = False
    checkpoint_layers: int | None = None
    """With checkpointing, recompute only the first N decoder layers (None: all of them)."""
    chunked_loss: bool = False
    """Head + cross-entropy in chunks: no full logits (spec.training.chunkedLoss)."""
    offload_activations: bool = False
    """Activations outside recomputed layers wait in host memory (spec.training.offloadActivations)."""
    pack_samples: bool = False
    attention: str = "auto"

    @property
    def mixed(self) -> bool:
        return self.precision != "fp32"

    def checkpointed_layers(self, layers: int) -> int:
        """How many of a stack's `layers` keep only their input (0 without checkpointing)."""
        if not self.checkpointing:
            return 0
        return layers if self.checkpoint_layers is None else min(self.checkpoint_layers, layers)

    @property
    def dense_packed_mask(self) -> bool:
        """Packed rows under SDPA: attention reads a dense block-diagonal mask of the whole row."""
        return self.pack_samples and self.attention == "sdpa"

    def but(self, **changes) -> Setup:
        return replace(self, **changes)


@dataclass(frozen=True)
class ModelStates:
    """Bytes on one GPU; `total` rounds once, as DeepSpeed does, so it may differ from the sum of
    the parts by a byte or two."""

    params: float
    gradients: float
    optimizer: float
    zero_buffers: float
    total: int


def model_state_bytes(trainable: int, frozen: int, largest_layer: int, setup: Setup) -> ModelStates:
    """Parameters, gradients, optimizer states and ZeRO-3 working buffers on one GPU.

    Raises:
        ValueError: offload asked of a ZeRO stage that cannot do it.
    """
    stage, ranks = setup.zero_stage, setup.ranks
    if setup.offload_optimizer and stage == 0:
        raise ValueError("optimizer offload needs ZeRO stage 1, 2 or 3")
    if setup.offload_params and stage != 3:
        raise ValueError("parameter offload needs ZeRO stage 3")
    weight = 2 if setup.mixed else 4
    parts = {  # name -> [(bytes before sharding, sharded across ranks?, on the GPU?)]
        "params": [(weight * (trainable + frozen), stage == 3, not setup.offload_params)],
        "optimizer": [((12 if setup.mixed else 8) * trainable, stage >= 1, not setup.offload_optimizer)],
        "zero_buffers": [(2 * weight * largest_layer, False, stage == 3)],
    }
    if setup.mixed:
        parts["gradients"] = [
            (2 * trainable, stage == 2, stage < 2 or (stage == 2 and not setup.offload_optimizer)),
            (4 * trainable, stage >= 1, not setup.offload_optimizer),
        ]
    else:
        parts["gradients"] = [(4 * trainable, stage >= 2, stage < 2 or not setup.offload_optimizer)]
    replicated = {
        name: sum(b for b, sharded, on_gpu in terms if on_gpu and not sharded) for name, terms in parts.items()
    }
    sharded = {
        name: sum(b for b, is_sharded, on_gpu in terms if on_gpu and is_sharded) for name, terms in parts.items()
    }
    per_gpu = {name: replicated[name] + sharded[name] / ranks for name in parts}
    return ModelStates(**per_gpu, total=int(sum(replicated.values()) + sum(sharded.values()) / ranks))


def decoder_layer_bytes(tokens: int, hidden: int, intermediate: int) -> int:
    """Bytes one Hugging Face Llama decoder layer saves for backward in bf16 (SDPA attention).

    Per token: each RMSNorm keeps an fp32 copy of its input (4h) and its bf16 output (2h); attention
    keeps the q/k/v projection input (2h), q and k after rotary, v (6h) and its output (2h); the MLP
    keeps its input (2h), gate, SiLU(gate), up and their product (8i): 24h + 8i. Flash/SDPA
    attention keeps no s x s scores (Korthikanti et al.'s 5as/h term does not apply). A test counts
    the tensors a real layer saves; on an H200, a 4-layer 13B-shaped Llama kept within 1.5% of this
    (plus 6 bytes per logit) after its forward pass at 2,048 tokens x 1-8 samples.
    """
    norms, attention, mlp_input = 2 * 6 * hidden, 10 * hidden, 2 * hidden
    return tokens * (norms + attention + mlp_input + 8 * intermediate)


def vision_layer_bytes(tokens: int, hidden: int, intermediate: int) -> int:
    """Bytes one CLIP encoder layer saves for backward in bf16: two LayerNorm inputs, the q/k/v
    input, q, k, v, attention output and the fc1 input (16h); quick-GELU keeps its input, its
    sigmoid and its output (6i)."""
    return tokens * (16 * hidden + 6 * intermediate)


def stack_bytes(layer_bytes: int, layer_input_bytes: int, layers: int, checkpointed_layers: int) -> int:
    """What a stack of identical layers keeps through the backward pass: a checkpointed layer only
    its input, the others all their activations. The layer being recomputed comes on top."""
    return checkpointed_layers * layer_input_bytes + (layers - checkpointed_layers) * layer_bytes


def logits_bytes(tokens: int, vocab: int) -> int:
    """The loss at the start of the backward pass: the logits, the fp32 log-softmax kept for
    backward, the fp32 gradient of the logits and its 16-bit copy: 2 + 4 + 4 + 2 bytes per logit in
    mixed precision (4 + 4 + 4 in fp32). An H200 run of a 13B-shaped model measured this plus the
    lm_head gradient within 3%."""
    return 12 * tokens * vocab


def held_logits_bytes(tokens: int, vocab: int, mixed: bool) -> int:
    """The 16-bit logits the train step holds through the whole backward pass."""
    return tokens * vocab * (2 if mixed else 4)


def chunked_loss_bytes(tokens: int, vocab: int, hidden: int, chunk_rows: int, mixed: bool) -> int:
    """The chunked loss at its peak: one chunk's logits as `logits_bytes` counts them, plus the supervised
    rows of the hidden states gathered for the head and their gradient (16-bit each; fp32 doubles both)."""
    rows = 2 * tokens * hidden * (2 if mixed else 4)
    return logits_bytes(min(tokens, chunk_rows), vocab) + rows


def packed_mask_bytes(row_tokens: int) -> int:
    """SDPA on a packed row: transformers' boolean block-diagonal mask (1 byte per token pair) and the additive
    16-bit bias SDPA's memory-efficient kernel turns it into (2 bytes)."""
    return 3 * row_tokens * row_tokens


REDUCE_BUCKET_ELEMENTS = 500_000_000
"""DeepSpeed's default reduce_bucket_size (the project's DeepSpeed config leaves it unset)."""
MAX_LIVE_PARAMETERS = 1_000_000_000
"""DeepSpeed's default stage3_max_live_parameters: how many gathered parameters ZeRO-3 keeps at once."""


def deepspeed_buffer_bytes(total_params: int, setup: Setup) -> int:
    """Runtime buffers outside DeepSpeed's model-state estimate, at its defaults: the gradient
    reduce bucket, and under ZeRO-3 the parameters gathered ahead of use (prefetch, reuse)."""
    weight = 2 if setup.mixed else 4
    live = min(MAX_LIVE_PARAMETERS, total_params) if setup.zero_stage == 3 and not setup.offload_params else 0
    return weight * (REDUCE_BUCKET_ELEMENTS + live)


def overhead_bytes(subtotal: float) -> int:
    return int(CUDA_CONTEXT_BYTES + FRAGMENTATION * subtotal)
