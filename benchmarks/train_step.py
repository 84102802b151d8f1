"""Training-step throughput: images/s and MFU per U-Net preset, plain fp32 eager vs optimized.

One step = the trainer's step: Palette's diffusion loss (Algorithm 1) forward, backward, Adam,
EMA update, on synthetic images of the preset's size. Modes:

  plain      fp32, TF32 off, NCHW, Adam (for-loop), EMA tensor by tensor, eager
  fp32_defaults  plain, but with PyTorch's default TF32 settings (on for cuDNN convolutions,
             off for matmuls): what an untuned fp32 script gets
  optimized  bf16 autocast (CUDA), TF32 on, channels_last where GroupNorm keeps the layout,
             fused Adam (CUDA), foreach EMA, eager
  optimized_nhwc  optimized with channels_last forced on (to see whether NHWC pays off even
             where eager GroupNorm falls back to NCHW)
  compiled   optimized + torch.compile, channels_last on (adds minutes of compile time for `paper`)

MFU = 3 x analytic forward FLOPs per image x images/s / the device's peak for the arithmetic
used (bf16, TF32 or fp32 dense, palette.distributed.PEAK_FLOPS); "vs bf16 peak" puts every mode on the
bf16 scale. On a CPU the peak is unknown and MFU is blank.

    python benchmarks/train_step.py                               # CUDA if present, else CPU
    python benchmarks/train_step.py --device cuda --presets paper,public,small --steps 10
    python benchmarks/train_step.py --device cpu --presets small,tiny --batch 8 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from palette.diffusion import diffusion_loss  # noqa: E402
from palette.ema import EMA  # noqa: E402
from palette.distributed import (  # noqa: E402
    arithmetic_of, device_peak_flops, group_norm_keeps_channels_last, set_tf32,
)
from palette.data import noise_generator  # noqa: E402
from palette.unet import PRESETS, build_unet, count_parameters, forward_flops  # noqa: E402

DEFAULT_BATCH = {"paper": 8, "paper_local": 8, "paper_no_attention": 8, "paper_dilated": 8,
                 "public": 32, "small": 64, "tiny": 64}


def run_mode(model, preset, mode, device, batch, image_size, steps, warmup, channels_last_choice) -> dict:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    optimized = mode not in ("plain", "fp32_defaults")
    use_bf16 = optimized and device.type == "cuda"
    tf32 = optimized
    if device.type == "cuda":
        set_tf32(tf32)
        if mode == "fp32_defaults":
            set_default_tf32()
        torch.backends.cudnn.benchmark = True
    channels_last = optimized and (
        channels_last_choice == "on" or mode == "optimized_nhwc"
        or (channels_last_choice == "auto" and device.type == "cuda"
            and (mode == "compiled" or group_norm_keeps_channels_last(device))))  # as palette.train decides
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    fused = optimized and device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused or None, foreach=None if fused else optimized)
    ema = EMA(model, 0.9999, foreach=optimized)
    network = torch.compile(model) if mode == "compiled" else model

    def forward(x, gamma):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return network(x.contiguous(memory_format=memory_format), gamma)

    generator = torch.Generator(device=device).manual_seed(0)
    source = torch.rand(batch, 3, image_size, image_size, device=device, generator=generator) * 2 - 1
    target = torch.rand(batch, 3, image_size, image_size, device=device, generator=generator) * 2 - 1

    samples = iter(range(10**9))

    def step():  # gamma and noise per sample, from generators seeded by the sample's number, as palette.train does
        generators = [noise_generator(0, next(samples), device) for _ in range(batch)]
        loss = diffusion_loss(forward, source, target, None, generator=generators)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update()
        return loss

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize()
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss_value = loss.item()  # also a synchronisation
    synchronize()
    seconds = time.perf_counter() - started
    images_per_s = steps * batch / seconds
    flops_per_image = 3 * forward_flops_cached(preset, image_size)
    arithmetic = arithmetic_of(device, use_bf16, tf32) if mode != "fp32_defaults" else (
        "tf32" if device.type == "cuda" else "fp32")  # its convolutions (>99 % of the FLOPs) use TF32
    peak, bf16_peak = device_peak_flops(device, arithmetic), device_peak_flops(device, "bf16")
    result = {
        "preset": preset, "mode": mode, "arithmetic": arithmetic, "channels_last": channels_last,
        "batch": batch, "image_size": image_size, "images_per_s": images_per_s,
        "step_s": seconds / steps, "warmup_s": warmup_seconds, "loss": loss_value,
        "tflop_per_image": flops_per_image / 1e12,
        "mfu": flops_per_image * images_per_s / peak if peak else None,
        "mfu_vs_bf16_peak": flops_per_image * images_per_s / bf16_peak if bf16_peak else None,
        "memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
    }
    del optimizer, ema, network
    model.to(memory_format=torch.contiguous_format)
    return result


MODES = ("plain", "fp32_defaults", "optimized", "optimized_nhwc", "compiled")


def set_default_tf32() -> None:
    """PyTorch's defaults: TF32 for cuDNN convolutions, IEEE fp32 for matmuls."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False


_FLOPS: dict = {}


def forward_flops_cached(preset: str, image_size: int) -> int:
    if (preset, image_size) not in _FLOPS:
        with torch.device("meta"):
            _FLOPS[preset, image_size] = forward_flops(build_unet(preset), image_size)
    return _FLOPS[preset, image_size]


def table(results: list[dict], device_name: str) -> str:
    lines = [
        f"device: {device_name}; torch {torch.__version__}",
        "| preset | mode | arithmetic | channels_last | batch | size | images/s | step (s) | MFU | vs bf16 peak | speed-up | memory (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    plain = {r["preset"]: r["images_per_s"] for r in results if r["mode"] == "plain" and "error" not in r}
    for r in results:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['mode']} | | | {r['batch']} | | {r['error']} | | | | | |")
            continue
        def pct(value):
            return "-" if value is None else f"{100 * value:.1f} %"
        speedup = f"{r['images_per_s'] / plain[r['preset']]:.2f}x" if r["preset"] in plain else "-"
        memory = "-" if r["memory_gb"] is None else f"{r['memory_gb']:.1f}"
        lines.append(
            f"| {r['preset']} | {r['mode']} | {r['arithmetic']} | {'yes' if r['channels_last'] else 'no'} | "
            f"{r['batch']} | {r['image_size']} | {r['images_per_s']:.2f} | {r['step_s']:.3f} | {pct(r['mfu'])} | "
            f"{pct(r['mfu_vs_bf16_peak'])} | {speedup} | {memory} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    parser.add_argument("--presets", default=None, help="comma-separated (default: paper,public,small on CUDA; small,tiny on CPU)")
    parser.add_argument("--modes", default="plain,optimized",
                        help="comma-separated from " + ", ".join(MODES))
    parser.add_argument("--batch", default=None,
                        help="one batch size for all presets, or preset=N,... (default " + str(DEFAULT_BATCH) + ")")
    parser.add_argument("--image-size", type=int, default=None, help="default: the preset's own (256 for paper/public)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per preset and mode")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning, compilation)")
    parser.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                        help="auto: where GroupNorm keeps the NHWC layout on this device (CUDA only)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    presets = (args.presets or ("paper,public,small" if device.type == "cuda" else "small,tiny")).split(",")
    batches = dict(DEFAULT_BATCH)
    if args.batch:
        if "=" in args.batch:
            batches.update({k: int(v) for k, v in (item.split("=") for item in args.batch.split(","))})
        else:
            batches = {preset: int(args.batch) for preset in presets}
    modes = args.modes.split(",")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    if device.type == "cuda":
        print(f"GroupNorm keeps channels_last on this device: {group_norm_keeps_channels_last(device)}", flush=True)

    results = []
    for preset in presets:
        image_size = args.image_size or PRESETS[preset]["image_size"]
        torch.manual_seed(0)
        model = build_unet(preset).to(device)
        print(f"{preset}: {count_parameters(model) / 1e6:.1f} M parameters, "
              f"{forward_flops_cached(preset, image_size) / 1e9:.1f} GFLOP per {image_size}px forward", flush=True)
        for mode in modes:
            try:
                result = run_mode(model, preset, mode, device, batches[preset], image_size, args.steps, args.warmup,
                                  args.channels_last)
            except torch.cuda.OutOfMemoryError:
                result = {"preset": preset, "mode": mode, "batch": batches[preset], "error": "out of memory"}
            except Exception as error:  # e.g. no compiler for torch.compile: report it, measure the rest
                result = {"preset": preset, "mode": mode, "batch": batches[preset],
                          "error": f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"}
            results.append(result)
            print(json.dumps(result), flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del model
    print()
    print(table(results, device_name))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
