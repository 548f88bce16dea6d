"""GPU types a plan can target: usable memory and dense bf16 peak."""

from __future__ import annotations

from dataclasses import dataclass

from vlmtune.train.flops import peak_flops

MIB = 2**20


@dataclass(frozen=True)
class GpuType:
    name: str
    memory_bytes: int
    """Total memory as CUDA reports it (nvidia-smi), not the marketing figure: an "80 GB" H100 has 79.6 GiB."""
    peak_flops: float
    """Dense bf16 FLOP/s (no sparsity); the same table `vlmtune bench step` computes MFU against."""


def _gpu(name: str, memory_mib: int, device_fragment: str) -> GpuType:
    peak = peak_flops(device_fragment)
    assert peak is not None, device_fragment
    return GpuType(name, memory_mib * MIB, peak)


GPUS: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        _gpu("a100-40gb", 40_960, "A100"),
        _gpu("a100-80gb", 81_920, "A100"),
        _gpu("h100-80gb", 81_559, "H100"),
        _gpu("h200", 143_771, "H200"),
        _gpu("l40s", 46_068, "L40S"),
        _gpu("a10g", 23_028, "A10G"),
    )
}


def gpu_type(name: str) -> GpuType | None:
    """The GPU type called `name` (case-insensitive, e.g. a node pool named `A100-80GB`), or None."""
    return GPUS.get(name.lower())
