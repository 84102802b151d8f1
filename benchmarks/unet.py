"""U-Net presets: parameters, FLOPs and forward / forward+backward time.

    python benchmarks/unet.py                                  # all presets, auto device
    python benchmarks/unet.py --device cpu --size 64 --batch 1 --presets paper,public,small
    python benchmarks/unet.py --device cuda --dtype bfloat16 --size 256 --batch 8 --channels-last

Parameters and GFLOPs (torch.utils.flop_counter, 2 FLOPs per multiply-add) are counted on the
meta device at --flops-size (256 by default: the paper's resolution), so they cost nothing.
Times are the median of --repeats runs after --warmup runs at --size x --size, batch --batch,
on the chosen device; peak memory (CUDA) is that of the timed runs, so it leaves out cuDNN's
algorithm search (cudnn.benchmark is on for CUDA). --dtype bfloat16 / float16 runs under autocast with float32 weights (how
training runs); "achieved" divides the FLOPs counted at the timed size by the forward+backward
time. One table row per preset, printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from palette.unet import PRESETS, build_unet, count_attention_layers, count_parameters  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="autocast dtype")
    parser.add_argument("--size", type=int, default=64, help="timed input height and width")
    parser.add_argument("--batch", type=int, default=1, help="timed batch size")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated preset names")
    parser.add_argument("--flops-size", type=int, default=256, help="input size for the GFLOP column")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.presets.split(",") if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; known: {sorted(PRESETS)}")
    return arguments


def counted_flops(preset: str, size: int, batch: int, backward: bool) -> int:
    """FLOPs of a forward (and backward) pass, counted on the meta device."""
    with torch.device("meta"):
        model = build_unet(preset)
        x = torch.zeros(batch, model.in_channels, size, size)
        gamma = torch.full((batch,), 0.5)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:  # as palette.unet.forward_flops, for the same count
        out = model(x, gamma)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(function, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        function()
    _synchronize(device)
    if device.type == "cuda":  # after cuDNN's algorithm search, whose workspaces are transient
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark_preset(preset: str, arguments: argparse.Namespace, device: torch.device) -> dict:
    with torch.device("meta"):
        meta_model = build_unet(preset)
    row = {
        "preset": preset,
        "parameters_M": count_parameters(meta_model) / 1e6,
        "attention_layers": count_attention_layers(meta_model),
        f"GFLOP_forward_{arguments.flops_size}": counted_flops(preset, arguments.flops_size, 1, False) / 1e9,
        "timed_at": f"{arguments.batch}x{arguments.size}x{arguments.size}",
    }
    del meta_model
    flops_timed = counted_flops(preset, arguments.size, arguments.batch, True)

    torch.manual_seed(0)
    memory_format = torch.channels_last if arguments.channels_last else torch.contiguous_format
    with device:  # initialise on the device: the 552 M-parameter presets take seconds on a CPU
        model = build_unet(preset)
    model = model.to(memory_format=memory_format)
    runnable = torch.compile(model) if arguments.compile else model
    x = torch.randn(arguments.batch, model.in_channels, arguments.size, arguments.size, device=device)
    x = x.contiguous(memory_format=memory_format)
    gamma = torch.rand(arguments.batch, device=device)
    dtype = DTYPES[arguments.dtype]
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    )

    def forward():
        with torch.no_grad(), autocast:
            runnable(x, gamma)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        with autocast:
            out = runnable(x, gamma)
        out.float().square().mean().backward()

    model.eval()
    row["forward_ms"] = 1e3 * median_seconds(forward, device, arguments.warmup, arguments.repeats)
    model.train()
    seconds = median_seconds(forward_backward, device, arguments.warmup, arguments.repeats)
    row["forward_backward_ms"] = 1e3 * seconds
    row["achieved_TFLOP_per_s"] = flops_timed / seconds / 1e12
    if device.type == "cuda":
        row["peak_memory_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model, runnable
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if value < 10 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.device == "auto":
        arguments.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(arguments.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# device {name}, torch {torch.__version__}, autocast {arguments.dtype}, "
        f"threads {torch.get_num_threads()}, channels_last {arguments.channels_last}, "
        f"compile {arguments.compile}, median of {arguments.repeats} after {arguments.warmup} warm-up",
        flush=True,
    )
    rows = []
    for preset in arguments.presets.split(","):
        rows.append(benchmark_preset(preset, arguments, device))
        print(json.dumps(rows[-1]), flush=True)
    print(markdown_table(rows))
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
