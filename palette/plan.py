"""`palette plan --configfile PRESET`: the price of a workflow configuration before it runs.

Per stage and in total: images processed, network evaluations, FLOPs, expected GPU-hours on a
named GPU at a stated MFU, and disk for data, checkpoints and samples. How each is counted:

- train (per experiment): steps x batch_size images; each is one forward and one backward
  through the U-Net, 3 x its forward FLOPs (palette.unet.forward_flops, counted on the meta device).
- sample (per experiment, evaluated task variant and sampler): evaluation images x
  samples_per_input images; each takes the sampler's steps forward passes (regression models one).
- evaluate: the samples again, through the metric networks; their FLOPs are small next to
  sampling and are not counted (the row shows the images only).
- GPU-hours = FLOPs / (peak FLOP/s x MFU) / 3600, with the GPU's dense datasheet peak
  (palette.distributed.PEAK_FLOPS, bf16 unless --arithmetic) and --mfu, an assumption to state:
  the default 0.35 is what the U-Net's convolutions typically reach in bf16 on H100/H200-class GPUs;
  replace it with the MFU column of `benchmarks/train_step.py` on your GPU.
- disk: data = the evaluation sets (ground truth and one input per task variant) as uncompressed
  8-bit RGB (an upper bound for PNG; the training images are the dataset's own files),
  checkpoints = per experiment the resumable state (weights, EMA, Adam's two moments: 16 bytes
  per parameter) x the checkpoints kept, plus the final EMA checkpoint (8 bytes per parameter);
  samples = every sample as uncompressed RGB.
The report (palette.report) sets the measured side, from the rules' benchmark files, beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from palette.config import deep_merge
from palette.sampler_presets import resolve_sampler

DEFAULT_GPU = "H200"
DEFAULT_MFU = 0.35


def model_numbers(train: dict) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of an experiment's U-Net, built on the meta device."""
    import torch

    from palette.config import load_config
    from palette.models import build_model
    from palette.unet import forward_flops

    config = load_config(dict(train, train_files="plan.txt"))
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for p in model.parameters()), int(forward_flops(model, config.image_size))


def plan(workflow_config: dict, evaluation_images: int | None = None, model=model_numbers) -> dict:
    """Rows per stage job and totals, from a workflow config (config.yaml, a preset)."""
    dataset = workflow_config["dataset"]
    size = dataset["image_size"]
    image_bytes = size * size * 3
    n_eval = dataset.get("evaluation_images") or evaluation_images
    if n_eval is None:
        raise ValueError("dataset.evaluation_images is null (all of the evaluation list): pass --evaluation-images N")
    sampling = workflow_config.get("sampling", {})
    per_input = sampling.get("samples_per_input", 1)
    samplers = {name: resolve_sampler(entry) for name, entry in workflow_config.get("samplers", {}).items()}
    rows, checkpoint_bytes = [], 0
    for name, experiment in workflow_config["experiments"].items():
        train = deep_merge(workflow_config.get("train_defaults", {}), experiment["train"])
        train.setdefault("image_size", size)
        parameters, forward = model(train)
        images = train["steps"] * train["batch_size"]
        rows.append({"stage": "train", "job": name, "images": images, "evaluations": images,
                     "flops": 3 * forward * images})
        every, keep = train.get("checkpoint_every") or train["steps"], train.get("keep_every")
        kept = 2 + (train["steps"] // keep if keep else 0)  # last.pt, previous.pt and the step_N.pt kept
        checkpoint_bytes += 16 * parameters * min(kept, max(1, train["steps"] // every) + 1) + 8 * parameters
        regression = train.get("objective") == "regression"
        for task in experiment["evaluate_on"]:
            names = list(experiment.get("samplers") or sampling.get("samplers", []))
            sweep = sampling.get("sweep") or {}
            if sweep.get("experiment") == name and sweep.get("task") == task:  # as rules/common.smk's samplers_for
                names += [sampler for sampler in sweep.get("samplers", []) if sampler not in names]
            for sampler in (["regression"] if regression else names):
                steps = 1 if regression else samplers[sampler]["steps"]
                count = n_eval * per_input
                rows.append({"stage": "sample", "job": f"{name}/{task}/{sampler}", "images": count,
                             "evaluations": count * steps, "flops": forward * count * steps})
                rows.append({"stage": "evaluate", "job": f"{name}/{task}/{sampler}", "images": count,
                             "evaluations": 0, "flops": 0})
    samples = sum(row["images"] for row in rows if row["stage"] == "sample")
    return {"rows": rows, "image_size": size,
            "disk": {"data (evaluation inputs, upper bound)": n_eval * image_bytes * (1 + len(
                         {t for e in workflow_config["experiments"].values() for t in e["evaluate_on"]})),
                     "checkpoints": checkpoint_bytes, "samples": samples * image_bytes}}


def gpu_hours(flops: float, gpu: str, mfu: float, arithmetic: str = "bf16") -> float:
    from palette.distributed import peak_flops

    peak = peak_flops(gpu, arithmetic)
    if not peak:
        raise ValueError(f"no datasheet peak for GPU {gpu!r} in {arithmetic} (palette.distributed.PEAK_FLOPS)")
    return flops / (peak * mfu) / 3600


def stage_totals(result: dict) -> dict[str, dict]:
    totals: dict[str, dict] = {}
    for row in result["rows"]:
        entry = totals.setdefault(row["stage"], {"stage": row["stage"], "jobs": 0, "images": 0, "evaluations": 0, "flops": 0})
        entry["jobs"] += 1
        for key in ("images", "evaluations", "flops"):
            entry[key] += row[key]
    return totals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfile", required=True, help="workflow config: config.yaml, config/presets/X.yaml, config/test.yaml")
    parser.add_argument("--gpu", default=DEFAULT_GPU, help=f"GPU name for GPU-hours (default {DEFAULT_GPU}; see palette.distributed.PEAK_FLOPS)")
    parser.add_argument("--mfu", type=float, default=DEFAULT_MFU,
                        help=f"model FLOPs utilisation assumed (default {DEFAULT_MFU}; measure yours with benchmarks/train_step.py)")
    parser.add_argument("--arithmetic", default="bf16", choices=["bf16", "tf32", "fp32"])
    parser.add_argument("--evaluation-images", type=int, default=None,
                        help="evaluation images when the config says null (all of the list), e.g. 10000 for ctest10k")


def run(args: argparse.Namespace) -> int:
    config = yaml.safe_load(Path(args.configfile).read_text())
    if not 0 < args.mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], got {args.mfu}")
    result = plan(config, args.evaluation_images)
    print(f"plan for {args.configfile}: {args.gpu} at {args.mfu:.0%} MFU of its {args.arithmetic} datasheet peak (an assumption)")
    header = f"{'stage':<10} {'jobs':>5} {'images':>14} {'net evals':>16} {'FLOPs':>11} {'GPU-hours':>11}"
    print(header)
    print("-" * len(header))
    grand = {"images": 0, "evaluations": 0, "flops": 0, "jobs": 0}
    for entry in stage_totals(result).values():
        hours = gpu_hours(entry["flops"], args.gpu, args.mfu, args.arithmetic)
        print(f"{entry['stage']:<10} {entry['jobs']:>5} {entry['images']:>14,} {entry['evaluations']:>16,} "
              f"{entry['flops']:>11.3e} {hours:>11.1f}" if entry["flops"] else
              f"{entry['stage']:<10} {entry['jobs']:>5} {entry['images']:>14,} {'-':>16} {'-':>11} {'-':>11}")
        for key in grand:
            grand[key] += entry[key]
    print(f"{'total':<10} {grand['jobs']:>5} {grand['images']:>14,} {grand['evaluations']:>16,} "
          f"{grand['flops']:>11.3e} {gpu_hours(grand['flops'], args.gpu, args.mfu, args.arithmetic):>11.1f}")
    print("disk: " + ", ".join(f"{name} {size / 1e9:.2f} GB" for name, size in result["disk"].items()))
    return 0

