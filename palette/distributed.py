"""The hardware side of training: processes (DDP through torchrun), precision switches, MFU peaks.

- `setup_distributed`: rank, world size and device; initialises the process group (NCCL on
  GPUs, gloo on CPUs) when torchrun set WORLD_SIZE > 1. `all_reduce`, `barrier` and
  `gather_objects` are no-ops for a single process.
- `resolve_device`: 'auto' -> CUDA when available, else the CPU.
- `set_tf32`: TF32 for fp32 matmuls and convolutions, through whichever API this torch has.
- `group_norm_keeps_channels_last`: probes whether GroupNorm returns NHWC for NHWC input on a
  device. PyTorch's eager CUDA GroupNorm has returned NCHW (a copy per norm), in which case
  channels_last only helps where the norms are compiled.
- `PEAK_FLOPS` / `peak_flops`: dense vendor peaks for MFU = achieved FLOP/s / peak; unknown
  devices (CPUs included) give None, and the trainer leaves MFU blank.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

# Dense peak FLOP/s from vendor data sheets (no sparsity): (bf16, tf32, fp32). MFU is blank where
# the device is not listed (CPUs: there is no meaningful single peak).
PEAK_FLOPS = {
    "H200": (989e12, 494.7e12, 66.9e12),
    "H100 SXM": (989e12, 494.7e12, 66.9e12),
    "H100 NVL": (835e12, 417.5e12, 60e12),
    "H100 PCIe": (756e12, 378e12, 51.2e12),
    "H100": (989e12, 494.7e12, 66.9e12),  # "NVIDIA H100 80GB HBM3" is the SXM part
    "GH200": (989e12, 494.7e12, 66.9e12),
    "B200": (2250e12, 1100e12, 80e12),
    "A100": (312e12, 156e12, 19.5e12),
    "A800": (312e12, 156e12, 19.5e12),
    "L40S": (362e12, 183e12, 91.6e12),
    "L40": (181e12, 90.5e12, 90.5e12),
    "L4": (121e12, 60e12, 30.3e12),
    "RTX 4090": (165e12, 82.6e12, 82.6e12),
    "RTX 3090": (71e12, 35.6e12, 35.6e12),
    "V100": (0.0, 0.0, 15.7e12),  # no bf16 / tf32 tensor cores
}


def peak_flops(device_name: str, arithmetic: str) -> float | None:
    """Peak FLOP/s of the GPU called `device_name` for 'bf16', 'tf32' or 'fp32'; None if unknown."""
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):  # longest first: "GH200" before "H200", "L40S" before "L4"
        if key in device_name:
            return PEAK_FLOPS[key][("bf16", "tf32", "fp32").index(arithmetic)] or None
    return None


def device_peak_flops(device: torch.device, arithmetic: str) -> float | None:
    """Peak FLOP/s of `device` (None on CPUs: no meaningful single peak, so MFU stays blank)."""
    return peak_flops(torch.cuda.get_device_name(device), arithmetic) if device.type == "cuda" else None


def set_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 for fp32 matmuls and convolutions, with the API this torch has."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        precision = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def group_norm_keeps_channels_last(device: torch.device) -> bool:
    """Whether GroupNorm returns NHWC for NHWC input here (if not, channels_last only adds copies)."""
    x = torch.randn(2, 64, 8, 8, device=device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = F.group_norm(x, 32)
    y.sum().backward()
    return y.is_contiguous(memory_format=torch.channels_last) and x.grad.is_contiguous(memory_format=torch.channels_last)


def arithmetic_of(device: torch.device, use_bf16: bool, tf32: bool) -> str:
    return "bf16" if use_bf16 else ("tf32" if tf32 and device.type == "cuda" else "fp32")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None): CUDA when available, else the CPU; anything else as torch.device takes it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def setup_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """(rank, world_size, device) for device 'auto', 'cuda' or 'cpu'; DDP through torchrun when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world_size == 1:
        return 0, 1, torch.device("cuda" if want_cuda else "cpu")
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if want_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return rank, world_size, torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")


def all_reduce(value: torch.Tensor, world_size: int, op: str = "sum") -> torch.Tensor:
    if world_size > 1:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return value


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def gather_objects(obj, world_size: int) -> list:
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    gathered = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered
