"""`palette plan --configfile PRESET`: the price of a workflow configuration before it runs (docs/cost.md).

One line per model for training, per sampling run, per group of like evaluation jobs and for the FID
reference; totals per stage and in all; disk; then warnings. What the numbers rest on:

- FLOPs: the U-Net's forward pass counted on the meta device (palette.unet.forward_flops); training takes
  3 x forward per image (forward and backward), sampling one forward per network evaluation (the sampler's
  steps; a regression baseline one, with one sample per input as the workflow draws).
- Time = FLOPs / (dense datasheet peak of the GPU x MFU), on the peak of the arithmetic the job runs in:
  training in the trainer's `precision` (auto = bf16 on CUDA); sampling and the metric networks run without
  autocast, as fp32 tensors whose convolutions cuDNN computes in TF32 by default: the TF32 peak.
- MFU: derived from the one GPU measurement of the `paper` U-Net (palette/unet.py): 267 ms per forward and
  backward at batch 8 on one H200 in bf16, eager. Inference is assumed to reach the same fraction (`--mfu`).
- Jobs: training is cut into `segment_steps` optimizer steps per job (the experiment's, else
  `training.segment_steps`; null: one job per model), sampling into `sampling.shard_size` evaluation images per job (null: one job per run). A training job
  runs on all the GPUs the profile gives its rule (`gpu` = GPUs of the whole job; linear scaling assumed),
  the other jobs on one of them.
- Attempts: training and sampling stop palette.attempts.safety_margin_seconds(limit) before the profile's
  `runtime` (palette.attempts.time_budget_seconds) and resume in the next attempt; evaluation and reference
  jobs keep nothing from a cut attempt (Snakemake deletes a failed job's outputs), so they must fit one. At
  most the rule's `retries` + 1 attempts are made (palette.attempts.RESUME_RETRIES for training and
  sampling, the profile's `retries` for the others).
- Evaluation and FID-reference jobs are bound by their CPU loop, which reads and resizes one image at a
  time in one thread: seconds per image measured by `measure_cpu_seconds` (CPU_SECONDS), plus the metric
  networks' FLOPs (`metric_network_flops`).
- Disk: evaluation sets and samples as uncompressed 8-bit images (an upper bound for PNG), checkpoints as
  the resumable state (16 bytes per parameter) x the checkpoints kept plus the final EMA (8 bytes each).
The report (palette.report) sets the measured side, from the rules' benchmark files, beside it.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from palette.attempts import MAX_SEGMENTS, RESUMABLE_RULES, RESUME_RETRIES
from palette.config import deep_merge, read_yaml
from palette.reference_sets import FID5K_REFERENCE_NAME, evaluation_subset_name
from palette.sampler_presets import resolve_sampler

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = "profiles/slurm"
DEFAULT_GPU = "H200"
TRAIN_RULES = ("train_segment", "train")  # every segment but the last, the last (rules/train.smk)
RESUMABLE_RULES = (*TRAIN_RULES, "sample")  # their state lives outside the outputs: a cut attempt resumes

# The one GPU measurement of the paper U-Net (palette/unet.py, module docstring): one H200, torch 2.11,
# bf16 autocast, batch 8 at 256x256, eager, contiguous layout: 267 ms per forward+backward = 30 images/s.
MEASURED_GPU, MEASURED_PRESET, MEASURED_IMAGE_SIZE = "H200", "paper", 256
MEASURED_BATCH, MEASURED_STEP_SECONDS = 8, 0.267
MFU_SOURCE = "measured on one H200: 267 ms per forward+backward, batch 8, bf16, eager; palette/unet.py"

# Sampling and the metric networks run without autocast: fp32, convolutions in TF32 (cuDNN's default).
INFERENCE_ARITHMETIC = "tf32"

# What the FID reference images are on disk: ImageNet's validation JPEGs (about 500x375), Places2's val_256
# JPEGs; the other kinds read their prepared PNGs at dataset.image_size ("png_256", scaled by pixels).
REFERENCE_FORMAT = {"imagenet": "jpeg_500x375", "places2": "jpeg_256"}

# Seconds of one CPU core, at 256x256 where an image size applies, measured with measure_cpu_seconds() on
# the development machine (Intel Xeon, 2 cores shared with other jobs, load average about 2; torch 2.14.1,
# Pillow 13.0, OpenCV 5.1, one thread each): the lowest of three runs' medians of 5 passes over 36 images cut
# from palette.data.demo_photo_paths().
CPU_SECONDS = {
    # one FID reference image through palette.metrics.reference.reference_statistics' loop: sha256 of the
    # file, decode, centre square at 256, clean-fid resize to 299
    "jpeg_500x375": 5.0e-3,  # a demo photo cut at 4:3 and re-encoded at 500x375, JPEG quality 90 (about 50 KB)
    "jpeg_256": 3.8e-3,
    "png_256": 5.6e-3,
    # palette.metrics.evaluate.evaluate_folders' CPU work per input with one sample (decode the sample and
    # its ground truth; PSNR, SSIM, noise ratio), and per further sample (decode; MS-SSIM with the previous)
    "evaluate_input": 0.033,
    "evaluate_extra_sample": 0.041,
    # per image fed to the metric networks: clean-fid resize to 299, ResNet-50's resize and crop to 224
    "network_preprocess": 3.0e-3,
    # evaluate_ground_truth per image: decode, then the same preprocessing
    "ground_truth_image": 5.2e-3,
}
READING_THREADS = 1  # reference_statistics and evaluate_folders read one image at a time, in one thread


def __getattr__(name: str):
    """DEFAULT_MFU is derived on first use: it counts the paper U-Net's FLOPs (a few seconds)."""
    if name == "DEFAULT_MFU":
        return measured_mfu()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------------
# The networks' numbers
# ---------------------------------------------------------------------------------------------------------

_NETWORK_NUMBERS: dict[str, tuple[int, int]] = {}


def model_numbers(train: dict) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of an experiment's network (palette.models.build_model),
    built and counted on the meta device, once per distinct network."""
    import torch

    from palette.config import load_config
    from palette.models import build_model
    from palette.unet import forward_flops

    config = load_config(dict(train, train_files="plan.txt"))
    # what build_model reads; the trainer's other settings do not change the network
    key = json.dumps([config.preset, config.model_overrides, config.objective, config.conditioning,
                      config.image_size], sort_keys=True)
    if key not in _NETWORK_NUMBERS:
        with torch.device("meta"):
            network = build_model(config)
        _NETWORK_NUMBERS[key] = (sum(p.numel() for p in network.parameters()),
                                 int(forward_flops(network, config.image_size)))
    return _NETWORK_NUMBERS[key]


@functools.lru_cache(maxsize=None)
def measured_mfu() -> float:
    """MFU implied by the H200 measurement: 3 x forward FLOPs x images/s / the H200's bf16 dense peak."""
    import torch

    from palette.distributed import peak_flops
    from palette.unet import build_unet, forward_flops

    with torch.device("meta"):
        forward = forward_flops(build_unet(MEASURED_PRESET), MEASURED_IMAGE_SIZE)
    return 3 * forward * MEASURED_BATCH / MEASURED_STEP_SECONDS / peak_flops(MEASURED_GPU, "bf16")


@functools.lru_cache(maxsize=None)
def metric_network_flops(image_size: int) -> dict[str, int]:
    """Forward FLOPs per image of the metric networks, counted on the meta device: the FID Inception at
    299 (fid, is, pd), ResNet-50 at 224 (ca; EfficientNet-Lite0, the offline fallback, is smaller) and
    LPIPS's AlexNet trunk at the image size (each image of a diversity pair)."""
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    from palette.metrics.inception import INPUT_SIZE, InceptionV3

    def counted(build, size):
        with torch.device("meta"):
            network, image = build(), torch.zeros(1, 3, size, size)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            network(image)
        return int(counter.get_total_flops())

    return {"inception": counted(InceptionV3, INPUT_SIZE), "classifier": counted(torchvision.models.resnet50, 224),
            "lpips": counted(lambda: torchvision.models.alexnet().features[:12], image_size)}  # lpips' 5 slices


def measure_cpu_seconds(images: int = 36, passes: int = 5) -> dict[str, float]:
    """Seconds per image (or evaluation input) of the CPU side of the FID reference and evaluation jobs on
    this machine, one thread, on images cut from the demo photos: the numbers behind CPU_SECONDS."""
    import hashlib
    import statistics
    import tempfile
    import time

    import cv2
    import numpy as np
    import torch
    from PIL import Image

    from palette.data import center_square_crop, demo_photo_paths, resize
    from palette.imageio import load_image, read_rgb
    from palette.metrics.classifier import _torchvision_preprocess
    from palette.metrics.evaluate import evaluate_folders
    from palette.metrics.image_quality import ms_ssim
    from palette.metrics.inception import clean_resize

    def median_seconds(work, count):
        times = []
        for _ in range(passes):
            start = time.perf_counter()
            work()
            times.append((time.perf_counter() - start) / count)
        return statistics.median(times)

    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    classifier_preprocess = _torchvision_preprocess()
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            files = {name: [] for name in ("jpeg_500x375", "jpeg_256", "png_256")}
            for path in (root / "truth", root / "samples" / "sample_0", root / "samples" / "sample_1"):
                path.mkdir(parents=True)
            photos = [load_image(path) for path in demo_photo_paths()]
            for number in range(images):
                photo = photos[number % len(photos)]
                height, width = photo.shape[:2]
                corner = number // len(photos) % 4  # one of four 4:3 windows of the photo
                crop_width = min(int(0.8 * width), int(0.8 * height) * 4 // 3)
                crop_height = crop_width * 3 // 4
                top, left = (corner // 2) * (height - crop_height), (corner % 2) * (width - crop_width)
                crop = photo[top:top + crop_height, left:left + crop_width]
                square = center_square_crop(crop, 256)
                Image.fromarray(resize(crop, 375, 500)).save(root / f"{number}.jpg", quality=90)
                Image.fromarray(square).save(root / f"{number}_256.jpg", quality=90)
                Image.fromarray(square).save(root / "truth" / f"{number}.png")
                files["jpeg_500x375"].append(root / f"{number}.jpg")
                files["jpeg_256"].append(root / f"{number}_256.jpg")
                files["png_256"].append(root / "truth" / f"{number}.png")
                for sample in range(2):  # outputs: the ground truth with noise, so PSNR is finite
                    noisy = np.clip(square + rng.normal(0, 8, square.shape), 0, 255).astype(np.uint8)
                    Image.fromarray(noisy).save(root / "samples" / f"sample_{sample}" / f"{number}.png")

            def read_reference(paths):  # the loop body of palette.metrics.reference.reference_statistics
                for path in paths:
                    hashlib.sha256(path.read_bytes()).digest()
                    clean_resize(center_square_crop(load_image(path), 256))

            measured = {name: median_seconds(lambda paths=paths: read_reference(paths), images)
                        for name, paths in files.items()}
            measured["evaluate_input"] = median_seconds(
                lambda: evaluate_folders(root / "truth", root / "samples" / "sample_0", "psnr,ssim,noise",
                                         device="cpu", progress=False), images)
            previous = {path.name: read_rgb(path) for path in (root / "samples" / "sample_0").glob("*.png")}
            measured["evaluate_extra_sample"] = median_seconds(
                lambda: [ms_ssim(previous[name], read_rgb(root / "samples" / "sample_1" / name)) for name in previous],
                images)
            arrays = [read_rgb(path) for path in files["png_256"]]
            measured["network_preprocess"] = median_seconds(
                lambda: [(clean_resize(array), classifier_preprocess(array)) for array in arrays], images)
            measured["ground_truth_image"] = median_seconds(
                lambda: [(clean_resize(array), classifier_preprocess(array))
                         for array in map(read_rgb, files["png_256"])], images)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    return measured


# ---------------------------------------------------------------------------------------------------------
# The configuration, the profile and the rules
# ---------------------------------------------------------------------------------------------------------

_ABSENT = object()


@functools.lru_cache(maxsize=None)
def workflow_schema() -> dict:
    path = REPOSITORY / "config" / "schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the workflow's config schema (palette plan takes its defaults) is missing")
    return yaml.safe_load(path.read_text())


def setting(config: dict, dotted: str):
    """The value at `dotted` ("dataset.evaluation_images") of a workflow config, or the schema's
    default where the config leaves it out, as the workflow's validation fills it in."""
    value, spec = config, workflow_schema()
    for key in dotted.split("."):
        spec = spec.get("properties", {}).get(key, {})
        value = value.get(key, _ABSENT) if isinstance(value, dict) else _ABSENT
    return spec.get("default") if value is _ABSENT else value


def split_sizes(config: dict, total: int) -> dict[str, int]:
    """Images per split of a data set of `total` images split by dataset.split (palette.data.split_files,
    which the split rule runs; each image its own group, so the counts do not depend on the seed)."""
    from palette.data import split_files

    fractions = {name: setting(config, f"dataset.split.{name}") for name in ("train", "val", "test")}
    return {name: len(files) for name, files in split_files([f"{n:06d}.png" for n in range(total)],
                                                              fractions).items()}


def evaluation_sizes(config: dict) -> dict[str, tuple[int, str]]:
    """(inputs, list name) of every task variant the experiments are evaluated on: the list's size, or
    dataset.evaluation_images capped by it; ValueError naming the key when neither is known."""
    kind = config["dataset"]["kind"]
    chosen = setting(config, "dataset.evaluation_images")
    subsets = setting(config, "evaluation.subsets") or {}
    tasks = [task for experiment in config["experiments"].values() for task in experiment["evaluate_on"]]
    sizes = {}
    for task in dict.fromkeys(tasks):
        subset = subsets.get(task, "test")
        if subset == "fid5k":
            listed = setting(config, "dataset.expected.fid5k")
        elif kind == "imagenet":
            listed = setting(config, "dataset.test_list.expected_count")
        elif kind == "places2":
            listed = setting(config, "dataset.expected.places2_classes") * setting(
                config, "dataset.expected.places10k_per_class")
        elif kind == "celebahq":
            listed = split_sizes(config, setting(config, "dataset.expected.celebahq"))["test"]
        else:
            listed = None
        if chosen is None and listed is None:
            raise ValueError(f"dataset.evaluation_images is null (the whole test list), but the test list of a "
                             f"{kind!r} data set is counted only by the data rules: set dataset.evaluation_images")
        count = min(chosen, listed) if chosen is not None and listed is not None else (chosen or listed)
        sizes[task] = (count, evaluation_subset_name(kind, subset))
    return sizes


def reference_size(config: dict) -> int | None:
    """Images of the FID reference set (rules/reference.smk), None where only the data rules count them."""
    kind = config["dataset"]["kind"]
    if kind == "imagenet":
        return setting(config, "dataset.expected.imagenet_validation")
    if kind == "places2":
        return setting(config, "dataset.expected.places2_validation")
    if kind == "celebahq":
        splits = setting(config, "evaluation.reference.splits") or ["val", "test"]
        sizes = split_sizes(config, setting(config, "dataset.expected.celebahq"))
        return sum(sizes[name] for name in splits)
    return None


def read_profile(path: str | Path) -> tuple[dict, str]:
    """(settings, file) of a Snakemake profile folder or its config.yaml."""
    path = Path(path)
    path = path / "config.yaml" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"profile {path} not found (a folder with config.yaml, or the file)")
    return read_yaml(path) or {}, str(path)  # a user's YAML: repeated keys, alias bombs refused


def _as_mapping(value) -> dict:
    """A profile's resources as a mapping, also from Snakemake's list form ["runtime=60", "train:gpu=8"]."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    mapping: dict = {}
    for item in value:
        key, _, number = str(item).partition("=")
        rule, _, resource = key.partition(":")
        if resource:
            mapping.setdefault(rule, {})[resource] = number
        else:
            mapping[key] = number
    return mapping


def minutes(value, where: str) -> float:
    """A Snakemake `runtime` in minutes: a number, or a string such as "1440", "24h", "1d", "2h30m"."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or not re.fullmatch(r"(\d+(\.\d+)?\s*(min|d|h|m|s)?\s*)+", text):
        raise ValueError(f"{where}: runtime {value!r} is not a time limit (minutes, or e.g. 24h, 1d, 90m)")
    units = {"d": 1440, "h": 60, "s": 1 / 60}
    pairs = re.findall(r"(\d+(?:\.\d+)?)\s*(min|d|h|m|s)?", text)
    total = sum(float(number) * units.get(unit, 1) for number, unit in pairs)
    if total <= 0:
        raise ValueError(f"{where}: runtime {value!r} is not a time limit (minutes, or e.g. 24h, 1d, 90m)")
    return total


@dataclass
class RuleLimits:
    """What the profile gives one rule's jobs, and how many attempts the workflow makes."""
    rule: str
    runtime_minutes: float | None  # per attempt; None: no profile, no limit
    gpus: int  # of the whole job
    threads: int | None
    max_attempts: int | None
    source: str  # where the resources come from, for the output
    attempts_source: str = ""  # where max_attempts comes from

    @property
    def usable_hours(self) -> float | None:
        """Hours an attempt works: the time budget the trainer and the sampler take from the limit
        (palette.attempts.time_budget_seconds: the limit less safety_margin_seconds)."""
        from palette.attempts import time_budget_seconds

        budget = time_budget_seconds(self.runtime_minutes)
        return None if budget is None else budget / 3600

    def attempts(self, hours: float) -> int | None:
        usable = self.usable_hours
        return None if usable is None else max(1, math.ceil(hours / usable - 1e-9))


def rule_limits(profile: dict | None, profile_name: str, rule: str) -> RuleLimits:
    """A rule's runtime, GPUs and threads from `set-resources.<rule>` over `default-resources`."""
    if profile is None:  # no profile: the rules' own requests (one GPU each), no time limit
        return RuleLimits(rule, None, 1, None, None, "no profile")
    own = _as_mapping(profile.get("set-resources")).get(rule)
    resources = {**_as_mapping(profile.get("default-resources")), **(own or {})}
    source = f"set-resources.{rule}" if own else f"no set-resources.{rule} in the profile: default-resources"
    runtime = resources.get("runtime")
    runtime = None if runtime is None else minutes(runtime, f"{profile_name}: {source}")
    source += "" if runtime else ", no runtime"
    threads = _as_mapping(profile.get("set-threads")).get(rule)
    retries = int(profile.get("retries", 0))
    attempts_source = f"profile retries: {retries}"
    if rule in RESUMABLE_RULES:  # their rules' own `retries:` (rules/common.smk), over the profile's
        retries, attempts_source = RESUME_RETRIES, f"rules' retries: {RESUME_RETRIES}"
    return RuleLimits(rule, runtime, int(resources.get("gpu", 0) or 0), None if threads is None else int(threads),
                      retries + 1, source, attempts_source)


# ---------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------

def _arithmetic(train: dict) -> str:
    """What the trainer computes in on a GPU: precision auto/bf16 -> bf16; fp32 -> TF32 unless tf32 is off."""
    if train.get("precision", "auto") in ("auto", "bf16"):
        return "bf16"
    return "tf32" if train.get("tf32", True) else "fp32"


def _peak(gpu: str, arithmetic: str) -> float:
    from palette.distributed import peak_flops

    peak = peak_flops(gpu, arithmetic)
    if not peak:
        raise ValueError(f"no datasheet peak for GPU {gpu!r} in {arithmetic} (palette.distributed.PEAK_FLOPS)")
    return peak


def gpu_hours(flops: float, gpu: str, mfu: float, arithmetic: str = "bf16") -> float:
    """GPU-hours of `flops` at `mfu` of the GPU's dense peak in `arithmetic`."""
    return flops / (_peak(gpu, arithmetic) * mfu) / 3600


def _job_pieces(total: int, piece: int | None) -> list[int]:
    """Sizes of the jobs a total is cut into: `piece` each, the last the rest (rules/train.smk, palette.shards)."""
    from palette.shards import shard_count

    count = shard_count(total, piece)
    return [total] if count == 1 else [piece] * (count - 1) + [total - piece * (count - 1)]


class _Planner:
    """The jobs of one workflow config at one profile's limits, as rows; the warnings _check_row collects."""

    def __init__(self, config: dict, limits: dict[str, RuleLimits], gpu: str, mfu: float):
        self.config, self.limits, self.gpu, self.mfu = config, limits, gpu, mfu
        self.size = config["dataset"]["image_size"]
        self.inference_peak = _peak(gpu, INFERENCE_ARITHMETIC) * mfu
        self.metrics = set(setting(config, "evaluation.metrics"))
        self.networks = metric_network_flops(self.size)
        self.pixels = (self.size / 256) ** 2  # CPU_SECONDS are per 256x256 image
        self.warnings: list[dict] = []

    def timed(self, rule: str, hours_on_one_gpu: float, uses_all_gpus: bool) -> dict:
        """Wall hours, reserved GPU-hours and attempts of one job of `rule`; only training uses all its GPUs."""
        gpus = self.limits[rule].gpus
        wall = hours_on_one_gpu / (gpus if uses_all_gpus and gpus else 1)
        return {"rule": rule, "wall_hours": wall, "gpu_hours": wall * max(gpus, 1),
                "attempts": self.limits[rule].attempts(wall)}

    def train_row(self, name: str, train: dict, parameters: int, forward: int, segment_steps: int | None) -> dict:
        steps, batch, arithmetic = train["steps"], train["batch_size"], _arithmetic(train)
        step_flops, peak = 3 * forward * batch, _peak(self.gpu, arithmetic) * self.mfu
        pieces = _job_pieces(steps, segment_steps)
        if len(pieces) - 1 > MAX_SEGMENTS:
            self.warnings.append({"stage": "train", "job": name, "text": f"{len(pieces) - 1} train_segment jobs, "
                                  f"more than the {MAX_SEGMENTS} the workflow allows: raise training.segment_steps"})
        jobs = []
        for index, piece in enumerate(pieces):
            rule = "train" if index == len(pieces) - 1 else "train_segment"
            step_hours = step_flops / peak / 3600 / max(self.limits[rule].gpus, 1)
            usable = self.limits[rule].usable_hours
            jobs.append({**self.timed(rule, step_flops * piece / peak / 3600, True), "steps": piece,
                         "gpus": self.limits[rule].gpus,
                         "steps_per_attempt": None if usable is None else int(usable / step_hours)})
            if usable is not None and usable < step_hours:
                self.warnings.append({"stage": "train", "job": name, "text": f"one optimizer step (~"
                                      f"{step_hours * 60:.1f} min) is longer than an attempt of {rule} "
                                      f"({usable * 60:.0f} min usable)"})
        return {"stage": "train", "job": name, "steps": steps, "batch_size": batch, "images": steps * batch,
                "evaluations": steps * batch, "flops": step_flops * steps, "parameters": parameters,
                "arithmetic": arithmetic, "gpu_hours": sum(job["gpu_hours"] for job in jobs), "jobs": len(jobs),
                "wall_days": sum(job["wall_hours"] for job in jobs) / 24,
                "attempts": None if jobs[0]["attempts"] is None else sum(job["attempts"] for job in jobs),
                "job_list": jobs}

    def sample_row(self, run: str, inputs: int, listed: str, samples: int, steps: int, forward: int) -> dict:
        per_input_flops = forward * samples * steps
        shards = [{**self.timed("sample", per_input_flops * piece / self.inference_peak / 3600, False),
                   "inputs": piece} for piece in _job_pieces(inputs, setting(self.config, "sampling.shard_size"))]
        batch = setting(self.config, "sampling.batch_size")
        batch_hours = forward * batch * steps / self.inference_peak / 3600
        usable = self.limits["sample"].usable_hours
        if usable is not None and usable < batch_hours:
            self.warnings.append({"stage": "sample", "job": run, "text": f"one batch of {batch} images (~"
                                  f"{batch_hours * 60:.0f} min) is longer than an attempt ({usable * 60:.0f} "
                                  f"min usable)"})
        return {"stage": "sample", "job": run, "rule": "sample", "inputs": inputs, "list": listed,
                "samples_per_input": samples, "images": inputs * samples, "evaluations": inputs * samples * steps,
                "flops": per_input_flops * inputs, "arithmetic": INFERENCE_ARITHMETIC,
                "gpu_hours": sum(shard["gpu_hours"] for shard in shards), "jobs": len(shards),
                "attempts": None if shards[0]["attempts"] is None else sum(shard["attempts"] for shard in shards),
                "attempts_per_shard": shards[0]["attempts"],
                "inputs_per_attempt": None if usable is None else int(
                    usable * 3600 * self.inference_peak / per_input_flops),
                "shard_list": shards}

    def evaluate_row(self, run: str, inputs: int, listed: str, samples: int) -> dict:
        metrics, networks = self.metrics, self.networks
        # network passes per input: sample_0, and its ground truth for PD (FID's other side is the reference)
        inception = (1 if {"fid", "is", "pd"} & metrics else 0) + (1 if "pd" in metrics else 0)
        classifier = 2 if "ca" in metrics else 0  # the sample and its ground truth
        lpips = 2 * (samples - 1) if "lpips" in metrics else 0  # both images of each diversity pair
        flops = inputs * (inception * networks["inception"] + classifier * networks["classifier"]
                          + lpips * networks["lpips"])
        cpu = inputs * self.pixels * (CPU_SECONDS["evaluate_input"] + (samples - 1) * CPU_SECONDS[
            "evaluate_extra_sample"] + max(inception, classifier) * CPU_SECONDS["network_preprocess"])
        return self.cpu_bound("evaluate", run, "evaluate", inputs, inputs * samples, flops, cpu, listed=listed,
                              samples_per_input=samples)

    def ground_truth_row(self, task: str, inputs: int, listed: str) -> dict:
        flops = inputs * ((1 if {"fid", "is", "pd"} & self.metrics else 0) * self.networks["inception"]
                          + (1 if "ca" in self.metrics else 0) * self.networks["classifier"])
        return self.cpu_bound("evaluate", f"ground_truth/{task}", "evaluate_ground_truth", inputs, inputs, flops,
                              inputs * self.pixels * CPU_SECONDS["ground_truth_image"], listed=listed)

    def reference_row(self) -> dict | None:
        kind = self.config["dataset"]["kind"]
        images = reference_size(self.config) if "fid" in self.metrics else 0
        if images is None:
            return {"stage": "reference", "job": "reference_statistics", "rule": "reference_statistics",
                    "images": 0, "evaluations": 0, "flops": 0, "gpu_hours": 0.0, "jobs": 1, "attempts": None,
                    "wall_hours": None,
                    "note": f"the reference splits of a {kind!r} data set are counted by the data rules: not estimated"}
        if not images:
            return None
        reading = CPU_SECONDS[REFERENCE_FORMAT[kind]] if kind in REFERENCE_FORMAT else (
            CPU_SECONDS["png_256"] * self.pixels)
        return self.cpu_bound("reference", "reference_statistics", "reference_statistics", images, images,
                              images * self.networks["inception"], images * reading)

    def fid5k_reference_row(self, sizes: dict[str, tuple[int, str]]) -> dict | None:
        """FID-5K's own reference statistics (docs/paper.md, "Which set and reference each table uses"),
        when a variant is scored on FID-5K."""
        if "fid" not in self.metrics or not any(listed == "fid5k" for _, listed in sizes.values()):
            return None
        images = setting(self.config, "dataset.expected.fid5k_reference")
        return self.cpu_bound("reference", f"reference_statistics/{FID5K_REFERENCE_NAME}", "reference_statistics",
                              images, images, images * self.networks["inception"],
                              images * CPU_SECONDS[REFERENCE_FORMAT["imagenet"]])

    def cpu_bound(self, stage, job, rule, inputs, images, flops, cpu_seconds, **extra) -> dict:
        """A job bound by its one-thread reading loop, then its networks; it holds its GPUs all the while."""
        cpu_hours = cpu_seconds / READING_THREADS / 3600
        timed = self.timed(rule, cpu_hours + flops / self.inference_peak / 3600, False)
        return {"stage": stage, "job": job, "inputs": inputs, "images": images, "evaluations": 0, "flops": flops,
                "cpu_hours": cpu_hours, **timed, "jobs": 1, **extra}


def plan(workflow_config: dict, model=None, profile: dict | None = None, profile_name: str = "",
         gpu: str = DEFAULT_GPU, mfu: float | None = None) -> dict:
    """Every job of a workflow config with its FLOPs, GPU-hours and attempts, and what they rest on.

    `model(train) -> (parameters, forward FLOPs per image)`, model_numbers by default; `profile`: a Snakemake
    profile's settings (None: no time limits, one GPU per job); `mfu` None: the measured one (measured_mfu)."""
    model = model or model_numbers
    mfu_source = MFU_SOURCE if mfu is None else "given (--mfu)"
    mfu = measured_mfu() if mfu is None else mfu
    if not 0 < mfu <= 1:
        raise ValueError(f"MFU must be in (0, 1], got {mfu}")
    config = workflow_config
    sizes = evaluation_sizes(config)
    limits = {rule: rule_limits(profile, profile_name, rule)
              for rule in (*TRAIN_RULES, "sample", "evaluate", "evaluate_ground_truth", "reference_statistics")}
    planner = _Planner(config, limits, gpu, mfu)
    samplers = {name: resolve_sampler(entry) for name, entry in (config.get("samplers") or {}).items()}
    sweep = setting(config, "sampling.sweep") or {}
    rows, checkpoint_bytes = [], 0
    for name, experiment in config["experiments"].items():
        train = deep_merge(config.get("train_defaults") or {}, experiment["train"])
        train.setdefault("image_size", planner.size)
        parameters, forward = model(train)
        if experiment.get("role") == "external":  # a model trained elsewhere: copied in, not trained (palette.external)
            checkpoint_bytes += 8 * parameters
        else:
            # an experiment's own segment_steps before training.segment_steps, as rules/common.smk reads them
            segment_steps = experiment.get("segment_steps") or setting(config, "training.segment_steps")
            rows.append(planner.train_row(name, train, parameters, forward, segment_steps))
            steps, every, keep = train["steps"], train.get("checkpoint_every") or train["steps"], train.get("keep_every")
            kept = 2 + (steps // keep if keep else 0)  # last.pt, previous.pt and the step_N.pt kept
            checkpoint_bytes += 16 * parameters * min(kept, max(1, steps // every) + 1) + 8 * parameters
        regression = train.get("objective") == "regression"
        samples = 1 if regression else setting(config, "sampling.samples_per_input")  # rules/common.smk
        for task in experiment["evaluate_on"]:
            names = list(experiment.get("samplers") or setting(config, "sampling.samplers"))
            if sweep.get("experiment") == name and sweep.get("task") == task:  # as rules/common.smk's samplers_for
                names += [sampler for sampler in sweep.get("samplers", []) if sampler not in names]
            inputs, listed = sizes[task]
            for sampler in ["regression"] if regression else names:
                run = f"{name}/{task}/{sampler}"
                steps = 1 if regression else samplers[sampler]["steps"]
                rows.append(planner.sample_row(run, inputs, listed, samples, steps, forward))
                rows.append(planner.evaluate_row(run, inputs, listed, samples))
    rows += [planner.ground_truth_row(task, inputs, listed) for task, (inputs, listed) in sizes.items()]
    rows += [row for row in [planner.reference_row(), planner.fid5k_reference_row(sizes)] if row]
    for row in rows:
        _check_row(row, limits, planner.warnings)
    size = planner.size
    masks = sum(inputs * size * size for task, (inputs, _) in sizes.items()
                if task.startswith(("inpainting", "uncropping")))
    return {"configfile": None, "profile": profile_name or None, "gpu": gpu, "mfu": mfu, "mfu_source": mfu_source,
            "image_size": size,
            "evaluation_sets": {task: {"inputs": inputs, "list": listed} for task, (inputs, listed) in sizes.items()},
            "limits": {rule: asdict(limit) | {"usable_hours": limit.usable_hours} for rule, limit in limits.items()},
            "rows": rows, "totals": stage_totals({"rows": rows}), "warnings": _grouped(planner.warnings, limits),
            # each evaluation set holds its sources and targets (and masks); samples: every image, as RGB
            "disk": {"evaluation sets": sum(inputs for inputs, _ in sizes.values()) * 2 * size * size * 3 + masks,
                     "checkpoints": checkpoint_bytes,
                     "samples": sum(row["images"] for row in rows if row["stage"] == "sample") * size * size * 3}}


def _check_row(row: dict, limits: dict[str, RuleLimits], warnings: list[dict]) -> None:
    """Warnings for the jobs of a row that cannot run, or cannot finish, at the profile's limits."""
    if row.get("note"):  # not estimated
        return
    parts = row.get("job_list") or row.get("shard_list") or [row]
    for rule in dict.fromkeys(part.get("rule", row.get("rule")) for part in parts):
        limit, subject = limits[rule], {"stage": row["stage"], "job": row["job"]}
        if limit.gpus == 0:
            warnings.append({**subject, "text": f"rule {rule} asks for no GPU [{limit.source}]"})
            continue
        if limit.runtime_minutes is None:
            continue
        mine = [part for part in parts if part.get("rule", rule) == rule]
        needed = max(part["attempts"] for part in mine)
        if rule not in RESUMABLE_RULES and needed > 1:
            warnings.append({**subject, "text": f"~{row['wall_hours'] * 60:,.0f} min do not fit one attempt of "
                                                f"{limit.usable_hours * 60:,.0f} usable min, and a cut attempt keeps "
                                                f"nothing: raise its runtime"})
        elif limit.max_attempts is not None and needed > limit.max_attempts:
            work = mine[0]["steps_per_attempt"] if rule in TRAIN_RULES else row["inputs_per_attempt"]
            warnings.append({**subject, "rule": rule, "needed": needed, "per_attempt": work})


def _grouped(warnings: list[dict], limits: dict[str, RuleLimits]) -> list[str]:
    """One line per kind of warning, naming the models or runs it concerns."""
    texts: dict[str, list[str]] = {}
    beyond: dict[str, list[dict]] = {}
    for warning in warnings:
        if "text" in warning:
            texts.setdefault(f"{warning['stage']}: {warning['text']}", []).append(warning["job"])
        else:
            beyond.setdefault(warning["rule"], []).append(warning)
    lines = [f"{text} ({', '.join(jobs)})" for text, jobs in texts.items()]
    for rule, cases in beyond.items():
        limit, training = limits[rule], rule in TRAIN_RULES
        needed = sorted({case["needed"] for case in cases})
        span = str(needed[0]) if len(needed) == 1 else f"{needed[0]} to {needed[-1]}"
        least = min(case["per_attempt"] for case in cases)
        hint = (f"an attempt trains ~{least:,} steps or more: set training.segment_steps" if training
                else f"an attempt samples ~{least:,} inputs or more: set sampling.shard_size")
        what = f"{len(cases)} {'model' if training else 'run'}{'s' * (len(cases) > 1)}"
        lines.append(f"{rule}: {what} need{'s' * (len(cases) == 1)} {span} attempts per job of "
                     f"{limit.usable_hours * 60:,.0f} usable min, "
                     f"but the workflow makes at most {limit.max_attempts} ({limit.attempts_source}); {hint} "
                     f"({', '.join(case['job'] for case in cases)})")
    return lines


def stage_totals(result: dict) -> dict[str, dict]:
    """Per stage: the sums of the rows' jobs, attempts, images, network evaluations, FLOPs, GPU-hours."""
    totals: dict[str, dict] = {}
    for row in result["rows"]:
        entry = totals.setdefault(row["stage"], {"stage": row["stage"], "jobs": 0, "attempts": 0, "images": 0,
                                                 "evaluations": 0, "flops": 0, "gpu_hours": 0.0})
        for key in ("jobs", "attempts", "images", "evaluations", "flops", "gpu_hours"):
            entry[key] += row.get(key) or 0
    return totals


# ---------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------

def _limit_line(limit: dict) -> str:
    """What the profile gives a rule, in one line."""
    gpus = f"{limit['gpus']} GPU{'s' * (limit['gpus'] != 1)}"
    if limit["runtime_minutes"] is None:
        return f"{gpus}, no time limit [{limit['source']}]"
    margin = limit["runtime_minutes"] - limit["usable_hours"] * 60
    fallback = "" if limit["source"] == f"set-resources.{limit['rule']}" else f" [{limit['source']}]"
    return (f"{gpus}, {limit['runtime_minutes']:,.0f} min per attempt ({margin:,.0f} min margin), at most "
            f"{limit['max_attempts']} attempts ({limit['attempts_source']}){fallback}")


def _attempts_per_job(row: dict) -> str:
    counts = [job["attempts"] for job in row["job_list"]]
    if counts[0] is None:
        return "-"
    return str(counts[0]) if len(set(counts)) == 1 else f"{counts[0]} (last {counts[-1]})"


def print_plan(result: dict, out=None) -> None:
    """The plan as text, lines of at most 120 characters (docs/cost.md quotes them)."""
    import textwrap

    def say(text=""):
        print(text, file=out or sys.stdout)

    rows, limits, gpu = result["rows"], result["limits"], result["gpu"]
    say(f"palette plan: {result['configfile']}, profile {result['profile'] or '(none)'}, GPU {gpu}")
    say(f"MFU {result['mfu']:.2f} {result['mfu_source']}")
    by_list: dict[tuple, list[str]] = {}
    for task, entry in result["evaluation_sets"].items():
        by_list.setdefault((entry["list"], entry["inputs"]), []).append(task)
    say("evaluation sets: " + "; ".join(f"{listed} {inputs:,} ({len(tasks)} variant{'s' * (len(tasks) > 1)})"
                                        for (listed, inputs), tasks in by_list.items()))
    train = [row for row in rows if row["stage"] == "train"]
    segments = any(len(row["job_list"]) > 1 for row in train)
    say()
    for rule in ("train_segment", "train") if segments else ("train",):
        say(f"{rule}: {_limit_line(limits[rule])}")
    say(f"{'model':<28} {'steps x batch':>18} {'FLOPs':>9} {'GPU-hours':>10} {'jobs':>5} {'GPUs':>5} "
        f"{'wall days':>10} {'attempts/job':>14}")
    for row in train:
        say(f"{row['job']:<28} {row['steps']:>11,} x {row['batch_size']:<4} {row['flops']:>9.2e} "
            f"{row['gpu_hours']:>10,.0f} {row['jobs']:>5} {row['job_list'][-1]['gpus']:>5} {row['wall_days']:>10.1f} "
            f"{_attempts_per_job(row):>14}")
    say()
    say(f"sample: {_limit_line(limits['sample'])}")
    say(f"{'run (experiment/task variant/sampler)':<56} {'images':>8} {'net evals':>12} {'FLOPs':>9} "
        f"{'GPU-hours':>9} {'shards':>6} {'att/shard':>9}")
    for row in (row for row in rows if row["stage"] == "sample"):
        attempts = "-" if row["attempts_per_shard"] is None else row["attempts_per_shard"]
        say(f"{row['job']:<56} {row['images']:>8,} {row['evaluations']:>12,} {row['flops']:>9.2e} "
            f"{row['gpu_hours']:>9,.1f} {row['jobs']:>6} {attempts:>9}")
    say()
    for rule in ("evaluate", "evaluate_ground_truth", "reference_statistics"):
        group = [row for row in rows if row.get("rule") == rule]
        if not group:
            continue
        limit = limits[rule]
        say(f"{rule}: {_limit_line(limit)}")
        if group[0].get("note"):
            say(f"  {group[0]['note']}")
            continue
        of = f" of {limit['runtime_minutes']:,.0f} min" if limit["runtime_minutes"] is not None else ""
        threads = (f"; one reading thread (the profile gives {limit['threads']})" if limit["threads"] else "")
        alike: dict[tuple, int] = {}
        for row in group:
            key = (row["inputs"], row.get("samples_per_input"), round(row["wall_hours"] * 60))
            alike[key] = alike.get(key, 0) + 1
        for (inputs, samples, wall), count in alike.items():
            what = f"{inputs:,} inputs x {samples} sample{'s' * (samples > 1)}" if samples else f"{inputs:,} images"
            jobs, each = (f"{count} jobs of ", " each") if count > 1 else ("", "")
            say(f"  {jobs}{what}: {f'~{wall:,}' if wall else '<1'} min{each}{of}{threads}")
    say()
    say(f"{'stage':<10} {'jobs':>6} {'attempts':>9} {'images':>16} {'net evals':>16} {'FLOPs':>9} {'GPU-hours':>11}")
    grand = {"jobs": 0, "attempts": 0, "images": 0, "evaluations": 0, "flops": 0, "gpu_hours": 0.0}
    for entry in result["totals"].values():
        attempts = f"{entry['attempts']:,}" if entry["attempts"] else "-"
        say(f"{entry['stage']:<10} {entry['jobs']:>6,} {attempts:>9} {entry['images']:>16,} "
            f"{entry['evaluations']:>16,} {entry['flops']:>9.2e} {entry['gpu_hours']:>11,.1f}")
        for key in grand:
            grand[key] += entry[key]
    say(f"total: {grand['jobs']:,} jobs, {grand['attempts']:,} attempts, {grand['flops']:.2e} FLOPs, "
        f"{grand['gpu_hours']:,.0f} {gpu}-hours = {grand['gpu_hours'] / 24:,.0f} {gpu}-days at MFU {result['mfu']:.2f}")
    say("disk: " + ", ".join(f"{name} {size / 1e9:,.1f} GB" for name, size in result["disk"].items()))
    if result["warnings"]:
        say("warnings:")
        for warning in result["warnings"]:
            say(textwrap.fill(warning, 118, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfile", required=True, help="workflow config: config/presets/X.yaml, config.yaml, ...")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"Snakemake profile (folder or its config.yaml) whose limits the jobs meet "
                             f"(default {DEFAULT_PROFILE})")
    parser.add_argument("--gpu", default=DEFAULT_GPU,
                        help=f"GPU the jobs run on (default {DEFAULT_GPU}; names in palette.distributed.PEAK_FLOPS)")
    parser.add_argument("--mfu", type=float, default=None,
                        help="model FLOPs utilisation (default: the one measured on an H200, palette/unet.py)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")


def run(args: argparse.Namespace) -> int:
    from palette.errors import schema_problem
    from palette.files import atomic_write

    config = read_yaml(args.configfile)  # a user's YAML: repeated keys, alias bombs refused (one line)
    problem = schema_problem(config, workflow_schema(), origin=args.configfile)
    if problem:
        raise ValueError(problem)
    profile_path = Path(args.profile)
    if not profile_path.exists() and not profile_path.is_absolute() and (REPOSITORY / profile_path).exists():
        profile_path = REPOSITORY / profile_path  # the repository's own profile, run from elsewhere
    profile, profile_name = read_profile(profile_path)
    try:
        evaluation_sizes(config)
    except ValueError as error:  # a key of the config: name its file
        raise ValueError(f"{args.configfile}: {error}") from error
    result = plan(config, profile=profile, profile_name=profile_name, gpu=args.gpu, mfu=args.mfu)
    result["configfile"] = args.configfile
    print_plan(result)
    if args.json:
        with atomic_write(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0
