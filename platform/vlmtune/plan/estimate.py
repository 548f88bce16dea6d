"""Per-GPU memory of a LLaVA shape under a Setup: model states + activations + overhead."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vlmtune.plan.memory import (
    ModelStates,
    Setup,
    chunked_loss_bytes,
    decoder_layer_bytes,
    deepspeed_buffer_bytes,
    held_logits_bytes,
    logits_bytes,
    model_state_bytes,
    overhead_bytes,
    packed_mask_bytes,
    stack_bytes,
    vision_layer_bytes,
)
from vlmtune.plan.params import ModelSize
from vlmtune.train.chunk_size import chunk_rows
from vlmtune_model.shapes import Shape


@dataclass(frozen=True)
class Activations:
    """Bytes of one micro-batch's activations. `kept` lives through the whole backward pass; the
    loss peaks at its start, the recomputed layer (checkpointing) later, when the logits are gone
    but for the 16-bit copy the step holds: the two peaks do not add up. With offloading, a layer's
    activations come back from the host for its backward: that is `recomputed_layer` too.
    `offloaded` waits in host memory, not on the GPU."""

    kept: int
    loss: int
    held_logits: int
    recomputed_layer: int
    offloaded: int = 0

    @property
    def peak(self) -> int:
        return max(self.loss, self.held_logits + self.recomputed_layer)

    @property
    def total(self) -> int:
        return self.kept + self.peak


@dataclass(frozen=True)
class MemoryEstimate:
    states: ModelStates
    buffers: int
    """DeepSpeed runtime buffers beyond its model-state estimate."""
    activations: Activations
    overhead: int

    @property
    def total(self) -> int:
        return self.states.total + self.buffers + self.activations.total + self.overhead

    def breakdown(self) -> dict[str, int]:
        states = {k: round(v) for k, v in asdict(self.states).items() if k != "total"}
        acts = self.activations
        return {
            **states,
            "deepspeed_buffers": self.buffers,
            "activations_kept": acts.kept,
            "activations_backward_peak": acts.peak,
            "logits_loss": acts.loss,
            "recomputed_layer": acts.recomputed_layer,
            "overhead": self.overhead,
            "activations_offloaded_host": acts.offloaded,
        }


def activation_bytes(shape: Shape, trainable: tuple[str, ...], setup: Setup) -> Activations:
    """Activations of one micro-batch at `setup.seq_len` tokens per sample.

    The language model always backpropagates (every trainable part sits at or before it); the
    projector keeps activations when it or the vision tower trains, the vision tower when it trains
    (with checkpointing, its recomputed layer is counted as kept: a small, safe overestimate).
    Selective checkpointing (`setup.checkpoint_layers`) keeps the full activations of the decoder
    layers past the first N. fp32 doubles the 16-bit figures. The chunked loss replaces the full
    logits by one chunk's and holds none through the backward pass; offloading moves everything but
    the recomputed layers' inputs and the final hidden states to the host; packed rows under SDPA add
    the dense mask. Compiled layers are planned as eager ones (inductor may save less: an upper bound).
    """
    t, v, b = shape.text, shape.vision, setup.micro_batch
    scale = 1 if setup.mixed else 2
    tokens = b * setup.seq_len
    layer = decoder_layer_bytes(tokens, t["hidden_size"], t["intermediate_size"])
    recomputed = setup.checkpointed_layers(t["num_hidden_layers"])
    inputs = recomputed * 2 * tokens * t["hidden_size"]
    kept = stack_bytes(layer, 2 * tokens * t["hidden_size"], t["num_hidden_layers"], recomputed)
    kept += tokens * 8 * t["hidden_size"]  # final RMSNorm (6h) and the lm_head input (2h)
    if "projector" in trainable or "vision_tower" in trainable:
        # Linear 1 input, GELU input, linear 2 input (the GELU output).
        kept += b * shape.image_tokens * (2 * v["hidden_size"] + 4 * t["hidden_size"])
    if "vision_tower" in trainable:
        patches = b * (shape.image_tokens + 1)
        vision_layer = vision_layer_bytes(patches, v["hidden_size"], v["intermediate_size"])
        # checkpointLayers limits the language model only: the vision tower recomputes every layer.
        vision_recomputed = v["num_hidden_layers"] if setup.checkpointing else 0
        kept += stack_bytes(vision_layer, 2 * patches * v["hidden_size"], v["num_hidden_layers"], vision_recomputed)
        kept += vision_layer if setup.checkpointing else 0
    offloaded = 0
    if setup.offload_activations:
        on_device = inputs + 2 * tokens * t["hidden_size"]  # recomputed layers' inputs, the final hidden states
        offloaded, kept = kept - on_device, on_device
    if setup.dense_packed_mask:
        kept += packed_mask_bytes(tokens) // scale  # not an activation: fp32 does not double it
    loss, held = _loss_bytes(shape, tokens, setup)
    reloaded = layer if (recomputed or (offloaded and recomputed < t["num_hidden_layers"])) else 0
    return Activations(
        kept=kept * scale, loss=loss, held_logits=held, recomputed_layer=reloaded * scale, offloaded=offloaded * scale
    )


def _loss_bytes(shape: Shape, tokens: int, setup: Setup) -> tuple[int, int]:
    """(the loss's peak, the logits held through the backward pass)."""
    vocab = shape.text["vocab_size"]
    if setup.chunked_loss:
        return chunked_loss_bytes(tokens, vocab, shape.text["hidden_size"], chunk_rows(vocab), setup.mixed), 0
    return logits_bytes(tokens, vocab), held_logits_bytes(tokens, vocab, setup.mixed)


def estimate_memory(shape: Shape, size: ModelSize, trainable: tuple[str, ...], setup: Setup) -> MemoryEstimate:
    """Per-GPU bytes of one rank.

    Raises:
        ValueError: the setup asks for an offload its ZeRO stage cannot do.
    """
    states = model_state_bytes(size.trainable(trainable), size.frozen(trainable), size.largest_layer, setup)
    buffers = deepspeed_buffer_bytes(size.total, setup)
    activations = activation_bytes(shape, trainable, setup)
    return MemoryEstimate(states, buffers, activations, overhead_bytes(states.total + buffers + activations.total))
