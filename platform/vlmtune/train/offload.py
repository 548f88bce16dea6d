"""Activation offloading: what the forward saves for backward waits in pinned host memory.

`torch.autograd.graph.save_on_cpu`'s mechanism (pinned buffers, copies on the compute stream, brought back on
use, strides kept) with two differences: parameters and views of them stay where they are (every linear layer saves its
weight; copying the model to the host each micro-batch would cost more than it frees), and so do tensors too
small to be worth a transfer. Inside a checkpointed layer the checkpoint's own hooks take precedence, so with
selective checkpointing the first layers recompute and the rest offload.
"""

from __future__ import annotations

import torch
from torch import nn

MIN_BYTES = 2**20
"""Smaller saved tensors stay on the device: their transfer latency outweighs the memory."""


def _is_parameter(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, nn.Parameter) or isinstance(getattr(tensor, "_base", None), nn.Parameter)


class OffloadActivations(torch.autograd.graph.saved_tensors_hooks):
    """Context manager: saved activations of the forward run inside it go to host memory.

    `offloaded_bytes` counts what went (the figure `vlmtune plan` estimates as host memory).
    """

    def __init__(self, min_bytes: int = MIN_BYTES):
        self.offloaded_bytes = 0
        self.offloaded = 0
        pinnable = torch.cuda.is_available()

        def pack(tensor: torch.Tensor):
            size = tensor.numel() * tensor.element_size()
            if _is_parameter(tensor) or size < min_bytes or tensor.is_sparse:
                return None, tensor
            pin = pinnable and tensor.device.type == "cuda"
            # Strides kept: compiled backward graphs assert the layout of what they saved.
            packed = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, pin_memory=pin)
            packed.copy_(tensor, non_blocking=pin)
            self.offloaded_bytes += size
            self.offloaded += 1
            return tensor.device, packed

        def unpack(packed) -> torch.Tensor:
            device, tensor = packed
            return tensor if device is None else tensor.to(device, non_blocking=tensor.is_pinned())

        super().__init__(pack, unpack)
